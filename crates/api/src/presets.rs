//! The model preset catalog: every model a Workspace can name, as data compiled in.
//!
//! To add a model, add one entry to [`PRESETS`]. Figures for the v0.3.2 presets follow the
//! reference table; for newer models without a fixed total, the total GPU memory is the
//! weight size plus about a quarter for activations and cache, rounded up.

use std::time::Duration;

use crate::quantity::ByteSize;

/// How the inference workload of a preset is laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    /// One pod per node, run by a Deployment.
    SingleNode,
    /// Ranks of one torchrun job spread over nodes, run by a StatefulSet.
    Distributed {
        /// Total number of ranks (GPUs) of the job.
        world_size: u32,
    },
}

/// Which inference server the preset image runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Runtime {
    /// The Hugging Face transformers server (`inference_api.py` under accelerate).
    Transformers,
    /// The llama-2 torchrun server.
    Llama2,
}

/// Where the preset image comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageAccess {
    /// The project publishes `kaito-<name>:<tag>` in the preset registry.
    Public {
        /// Image tag.
        tag: &'static str,
    },
    /// The licence forbids publishing: the user builds the image and names it.
    PrivateOnly,
}

/// What fine-tuning a preset needs, when it can be tuned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TuningNeeds {
    /// GPUs the tuning job uses.
    pub gpu_count: u32,
    /// Total GPU memory the tuning job needs.
    pub total_gpu_memory: ByteSize,
    /// GPU memory each GPU must have.
    pub per_gpu_memory: ByteSize,
}

/// A model the project knows how to run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Preset {
    /// Name users write in `preset.name`.
    pub name: &'static str,
    /// GPUs the inference workload needs in total.
    pub gpu_count: u32,
    /// Total GPU memory inference needs.
    pub total_gpu_memory: ByteSize,
    /// GPU memory each GPU must have (zero: weights are split over GPUs freely).
    pub per_gpu_memory: ByteSize,
    /// Disk each node needs for the image and weights.
    pub disk: ByteSize,
    /// Image source.
    pub image: ImageAccess,
    /// Single node or distributed.
    pub workload: Workload,
    /// Inference server.
    pub runtime: Runtime,
    /// Server arguments, in the order they are passed; an empty value renders as `--key`.
    pub run_args: &'static [(&'static str, &'static str)],
    /// Tuning needs; `None` when the preset cannot be tuned.
    pub tuning: Option<TuningNeeds>,
    /// Whether the weights are gated and need `presetOptions.modelAccessSecret`.
    pub needs_model_access_secret: bool,
    /// Longest context the model accepts, when known.
    pub context_length: Option<u32>,
    /// How long the workload may take to become ready.
    pub readiness_timeout: Duration,
}

impl Preset {
    /// Looks a preset up by exact name.
    pub fn find(name: &str) -> Option<&'static Preset> {
        PRESETS.iter().find(|p| p.name == name)
    }

    /// Names of all presets, comma-separated, for error messages.
    pub fn supported_list() -> String {
        Self::names_where(|_| true)
    }

    /// Names of the presets that can be fine-tuned, comma-separated, for error messages.
    pub fn tunable_list() -> String {
        Self::names_where(Self::supports_tuning)
    }

    fn names_where(keep: impl Fn(&Preset) -> bool) -> String {
        PRESETS
            .iter()
            .filter(|p| keep(p))
            .map(|p| p.name)
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Whether only a user-supplied (private) image may run this preset.
    pub fn private_only(&self) -> bool {
        self.image == ImageAccess::PrivateOnly
    }

    /// Whether the preset runs as a distributed StatefulSet.
    pub fn is_distributed(&self) -> bool {
        matches!(self.workload, Workload::Distributed { .. })
    }

    /// Whether the preset can be fine-tuned.
    pub fn supports_tuning(&self) -> bool {
        self.tuning.is_some()
    }

    /// The public image `<registry>/kaito-<name>:<tag>`, if the project publishes one.
    pub fn public_image(&self, registry: &str) -> Option<String> {
        match self.image {
            ImageAccess::Public { tag } => Some(format!(
                "{}/kaito-{}:{tag}",
                registry.trim_end_matches('/'),
                self.name
            )),
            ImageAccess::PrivateOnly => None,
        }
    }
}

/// Where users find the list of supported presets.
pub const SUPPORTED_PRESETS_DOC: &str =
    "see the Presets section of the project README or run `workspace-controller --list-presets`";

const MIN: u64 = 60;

const TUNE_PHI: TuningNeeds = tune(1, 16.0, 16.0);
const TUNE_PHI3_MINI: TuningNeeds = tune(1, 72.0, 72.0);
const TUNE_PHI3_MEDIUM: TuningNeeds = tune(1, 80.0, 80.0);
const TUNE_7B: TuningNeeds = tune(1, 16.0, 16.0);

const fn tune(gpu_count: u32, total: f64, per_gpu: f64) -> TuningNeeds {
    TuningNeeds {
        gpu_count,
        total_gpu_memory: ByteSize::gib_frac(total),
        per_gpu_memory: ByteSize::gib_frac(per_gpu),
    }
}

const PHI2_ARGS: &[(&str, &str)] = &[("pipeline", "text-generation"), ("torch_dtype", "float16")];
const PHI_ARGS: &[(&str, &str)] = &[
    ("pipeline", "text-generation"),
    ("torch_dtype", "auto"),
    ("trust_remote_code", ""),
];
const BF16_ARGS: &[(&str, &str)] = &[("pipeline", "text-generation"), ("torch_dtype", "bfloat16")];
const BF16_REMOTE_ARGS: &[(&str, &str)] = &[
    ("pipeline", "text-generation"),
    ("torch_dtype", "bfloat16"),
    ("trust_remote_code", ""),
];
const LLAMA_ARGS: &[(&str, &str)] = &[("max_seq_len", "512"), ("max_batch_size", "8")];

/// A single-node transformers preset with a public image.
#[allow(clippy::too_many_arguments)]
const fn public(
    name: &'static str,
    gpu_count: u32,
    total_gib: f64,
    disk_gib: u64,
    tag: &'static str,
    run_args: &'static [(&'static str, &'static str)],
    tuning: Option<TuningNeeds>,
    context_length: Option<u32>,
) -> Preset {
    Preset {
        name,
        gpu_count,
        total_gpu_memory: ByteSize::gib_frac(total_gib),
        per_gpu_memory: ByteSize(0),
        disk: ByteSize::gib(disk_gib),
        image: ImageAccess::Public { tag },
        workload: Workload::SingleNode,
        runtime: Runtime::Transformers,
        run_args,
        tuning,
        needs_model_access_secret: false,
        context_length,
        readiness_timeout: Duration::from_secs(30 * MIN),
    }
}

/// A llama-2 preset: private image, torchrun, tensor-parallel shards on every GPU.
const fn llama2(
    name: &'static str,
    world_size: u32,
    total_gib: u64,
    per_gpu_gib: u64,
    disk_gib: u64,
    timeout_min: u64,
) -> Preset {
    Preset {
        name,
        gpu_count: world_size,
        total_gpu_memory: ByteSize::gib(total_gib),
        per_gpu_memory: ByteSize::gib(per_gpu_gib),
        disk: ByteSize::gib(disk_gib),
        image: ImageAccess::PrivateOnly,
        workload: if world_size > 1 {
            Workload::Distributed { world_size }
        } else {
            Workload::SingleNode
        },
        runtime: Runtime::Llama2,
        run_args: LLAMA_ARGS,
        tuning: None,
        needs_model_access_secret: false,
        context_length: None,
        readiness_timeout: Duration::from_secs(timeout_min * MIN),
    }
}

/// A preset whose gated weights are downloaded at run time with the user's HF token.
const fn gated(preset: Preset) -> Preset {
    Preset {
        needs_model_access_secret: true,
        ..preset
    }
}

/// Every supported preset.
pub static PRESETS: &[Preset] = &[
    public(
        "phi-2",
        1,
        12.0,
        50,
        "0.0.5",
        PHI2_ARGS,
        Some(TUNE_PHI),
        None,
    ),
    public(
        "phi-3-mini-4k-instruct",
        1,
        9.0,
        50,
        "0.0.2",
        PHI_ARGS,
        Some(TUNE_PHI3_MINI),
        None,
    ),
    public(
        "phi-3-mini-128k-instruct",
        1,
        9.0,
        50,
        "0.0.2",
        PHI_ARGS,
        Some(TUNE_PHI3_MINI),
        None,
    ),
    public(
        "phi-3-medium-4k-instruct",
        1,
        28.0,
        50,
        "0.0.2",
        PHI_ARGS,
        Some(TUNE_PHI3_MEDIUM),
        None,
    ),
    public(
        "phi-3-medium-128k-instruct",
        1,
        28.0,
        50,
        "0.0.2",
        PHI_ARGS,
        Some(TUNE_PHI3_MEDIUM),
        None,
    ),
    public(
        "falcon-7b",
        1,
        14.0,
        50,
        "0.0.6",
        BF16_ARGS,
        Some(TUNE_7B),
        None,
    ),
    public(
        "falcon-7b-instruct",
        1,
        14.0,
        50,
        "0.0.6",
        BF16_ARGS,
        None,
        None,
    ),
    public(
        "falcon-40b",
        2,
        90.0,
        400,
        "0.0.7",
        BF16_ARGS,
        Some(tune(2, 90.0, 16.0)),
        None,
    ),
    public(
        "falcon-40b-instruct",
        2,
        90.0,
        400,
        "0.0.7",
        BF16_ARGS,
        None,
        None,
    ),
    public(
        "mistral-7b",
        1,
        14.0,
        100,
        "0.0.7",
        BF16_ARGS,
        Some(TUNE_7B),
        Some(32768),
    ),
    public(
        "mistral-7b-instruct",
        1,
        16.0,
        100,
        "0.0.7",
        BF16_ARGS,
        None,
        Some(32768),
    ),
    llama2("llama-2-7b", 1, 14, 14, 34, 10),
    llama2("llama-2-7b-chat", 1, 16, 14, 34, 10),
    llama2("llama-2-13b", 2, 30, 15, 46, 20),
    llama2("llama-2-13b-chat", 2, 30, 15, 46, 20),
    llama2("llama-2-70b", 8, 152, 19, 158, 30),
    llama2("llama-2-70b-chat", 8, 192, 19, 158, 30),
    public(
        "phi-3.5-mini-instruct",
        1,
        8.0,
        70,
        "0.2.0",
        PHI_ARGS,
        Some(tune(1, 72.0, 72.0)),
        Some(131072),
    ),
    public(
        "phi-4",
        1,
        40.0,
        150,
        "0.2.0",
        PHI_ARGS,
        Some(tune(1, 70.0, 70.0)),
        Some(16384),
    ),
    public(
        "phi-4-mini-instruct",
        1,
        8.0,
        70,
        "0.2.0",
        PHI_ARGS,
        Some(tune(1, 72.0, 72.0)),
        Some(131072),
    ),
    gated(public(
        "llama-3.1-8b-instruct",
        1,
        22.0,
        110,
        "0.2.0",
        BF16_ARGS,
        None,
        Some(131072),
    )),
    gated(public(
        "llama-3.3-70b-instruct",
        2,
        160.0,
        220,
        "0.0.1",
        BF16_ARGS,
        None,
        Some(131072),
    )),
    public(
        "qwen2.5-coder-7b-instruct",
        1,
        24.0,
        110,
        "0.2.0",
        BF16_REMOTE_ARGS,
        Some(tune(1, 24.0, 24.0)),
        Some(32768),
    ),
    public(
        "qwen2.5-coder-32b-instruct",
        1,
        70.0,
        230,
        "0.2.0",
        BF16_REMOTE_ARGS,
        Some(tune(2, 140.0, 70.0)),
        Some(32768),
    ),
    public(
        "deepseek-r1-distill-llama-8b",
        1,
        16.5,
        90,
        "0.2.0",
        BF16_ARGS,
        None,
        Some(131072),
    ),
    public(
        "deepseek-r1-distill-qwen-14b",
        1,
        25.7,
        120,
        "0.2.0",
        BF16_ARGS,
        None,
        Some(131072),
    ),
    public(
        "gemma-3-4b-instruct",
        1,
        10.0,
        60,
        "0.0.1",
        BF16_ARGS,
        None,
        Some(131072),
    ),
    public(
        "gemma-3-27b-instruct",
        1,
        64.0,
        200,
        "0.0.1",
        BF16_ARGS,
        None,
        Some(131072),
    ),
    public(
        "gpt-oss-20b",
        1,
        32.0,
        110,
        "0.0.1",
        PHI_ARGS,
        None,
        Some(131072),
    ),
    public(
        "gpt-oss-120b",
        1,
        80.0,
        250,
        "0.0.1",
        PHI_ARGS,
        None,
        Some(131072),
    ),
    Preset {
        workload: Workload::Distributed { world_size: 16 },
        ..public(
            "deepseek-r1-0528",
            16,
            800.0,
            800,
            "0.0.1",
            BF16_REMOTE_ARGS,
            None,
            Some(163840),
        )
    },
    Preset {
        workload: Workload::Distributed { world_size: 16 },
        ..public(
            "deepseek-v3-0324",
            16,
            800.0,
            800,
            "0.0.1",
            BF16_REMOTE_ARGS,
            None,
            Some(163840),
        )
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reference_preset_is_present() {
        for name in [
            "phi-2",
            "phi-3-mini-4k-instruct",
            "phi-3-mini-128k-instruct",
            "phi-3-medium-4k-instruct",
            "phi-3-medium-128k-instruct",
            "falcon-7b",
            "falcon-7b-instruct",
            "falcon-40b",
            "falcon-40b-instruct",
            "mistral-7b",
            "mistral-7b-instruct",
            "llama-2-7b",
            "llama-2-7b-chat",
            "llama-2-13b",
            "llama-2-13b-chat",
            "llama-2-70b",
            "llama-2-70b-chat",
        ] {
            assert!(Preset::find(name).is_some(), "{name} missing");
        }
    }

    #[test]
    fn names_are_unique() {
        let mut names: Vec<&str> = PRESETS.iter().map(|p| p.name).collect();
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(before, names.len());
    }

    #[test]
    fn falcon_40b_needs_400_gibibytes_of_disk_not_400_bytes() {
        let falcon = Preset::find("falcon-40b").expect("preset");
        assert_eq!(falcon.disk, ByteSize::gib(400));
    }

    #[test]
    fn public_images_follow_the_registry_naming() {
        let phi = Preset::find("phi-3-mini-4k-instruct").expect("preset");
        assert_eq!(
            phi.public_image("mcr.microsoft.com/aks/kaito/").as_deref(),
            Some("mcr.microsoft.com/aks/kaito/kaito-phi-3-mini-4k-instruct:0.0.2")
        );
        let llama = Preset::find("llama-2-13b-chat").expect("preset");
        assert_eq!(llama.public_image("r"), None);
        assert!(llama.private_only() && llama.is_distributed());
    }

    #[test]
    fn distributed_presets_spread_their_ranks_evenly() {
        for p in PRESETS {
            if let Workload::Distributed { world_size } = p.workload {
                assert_eq!(world_size, p.gpu_count, "{}", p.name);
            }
        }
    }

    #[test]
    fn instruct_falcon_and_mistral_cannot_be_tuned() {
        for name in [
            "falcon-7b-instruct",
            "falcon-40b-instruct",
            "mistral-7b-instruct",
        ] {
            assert!(
                !Preset::find(name).is_some_and(Preset::supports_tuning),
                "{name}"
            );
        }
    }
}
