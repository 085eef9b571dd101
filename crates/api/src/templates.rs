//! Default parameter documents the charts ship as ConfigMaps and validation checks against.

use crate::workspace::TuningMethod;

/// Name of the default LoRA parameters ConfigMap.
pub const LORA_PARAMS_TEMPLATE: &str = "lora-params-template";
/// Name of the default QLoRA parameters ConfigMap.
pub const QLORA_PARAMS_TEMPLATE: &str = "qlora-params-template";
/// Name of the default inference parameters ConfigMap.
pub const INFERENCE_PARAMS_TEMPLATE: &str = "inference-params-template";
/// Key of the tuning parameters in their ConfigMap.
pub const TRAINING_CONFIG_KEY: &str = "training_config.yaml";
/// Key of the inference parameters in their ConfigMap.
pub const INFERENCE_CONFIG_KEY: &str = "inference_config.yaml";

/// Default LoRA training parameters.
pub const LORA_TRAINING_CONFIG: &str = r#"training_config:
  ModelConfig:
    torch_dtype: "bfloat16"
    local_files_only: true
    device_map: "auto"
  QuantizationConfig:
    load_in_4bit: false
  LoraConfig:
    r: 8
    lora_alpha: 8
    lora_dropout: 0.0
  TrainingArguments:
    output_dir: "/mnt/results"
    ddp_find_unused_parameters: false
    save_strategy: "epoch"
    per_device_train_batch_size: 1
  DataCollator:
    mlm: true
  DatasetConfig:
    shuffle_dataset: true
    train_test_split: 1
"#;

/// Default QLoRA training parameters.
pub const QLORA_TRAINING_CONFIG: &str = r#"training_config:
  ModelConfig:
    torch_dtype: "bfloat16"
    local_files_only: true
    device_map: "auto"
  QuantizationConfig:
    load_in_4bit: true
    bnb_4bit_quant_type: "nf4"
    bnb_4bit_compute_dtype: "bfloat16"
    bnb_4bit_use_double_quant: true
  LoraConfig:
    r: 8
    lora_alpha: 8
    lora_dropout: 0.0
  TrainingArguments:
    output_dir: "/mnt/results"
    ddp_find_unused_parameters: false
    save_strategy: "epoch"
    per_device_train_batch_size: 1
  DataCollator:
    mlm: true
  DatasetConfig:
    shuffle_dataset: true
    train_test_split: 1
"#;

/// Default inference runtime parameters.
pub const INFERENCE_CONFIG: &str = r#"max_probe_steps: 6
vllm:
  cpu-offload-gb: 0
  gpu-memory-utilization: 0.95
  swap-space: 4
"#;

/// Every default parameters ConfigMap the chart ships: (name, key, document).
pub const DEFAULT_CONFIG_MAPS: [(&str, &str, &str); 3] = [
    (
        LORA_PARAMS_TEMPLATE,
        TRAINING_CONFIG_KEY,
        LORA_TRAINING_CONFIG,
    ),
    (
        QLORA_PARAMS_TEMPLATE,
        TRAINING_CONFIG_KEY,
        QLORA_TRAINING_CONFIG,
    ),
    (
        INFERENCE_PARAMS_TEMPLATE,
        INFERENCE_CONFIG_KEY,
        INFERENCE_CONFIG,
    ),
];

/// Name of the default parameters ConfigMap of a tuning method.
pub fn default_tuning_config_map(method: TuningMethod) -> &'static str {
    match method {
        TuningMethod::Lora => LORA_PARAMS_TEMPLATE,
        TuningMethod::Qlora => QLORA_PARAMS_TEMPLATE,
    }
}

/// Default training parameters of a tuning method.
pub fn default_training_config(method: TuningMethod) -> &'static str {
    match method {
        TuningMethod::Lora => LORA_TRAINING_CONFIG,
        TuningMethod::Qlora => QLORA_TRAINING_CONFIG,
    }
}
