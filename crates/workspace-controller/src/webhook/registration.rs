//! Telling the API server where the webhook is: the CA bundle is injected into the chart's
//! webhook configurations, or (for local runs by URL) the configurations are created here.

use k8s_openapi::{
    ByteString,
    api::admissionregistration::v1::{
        MutatingWebhook, MutatingWebhookConfiguration, RuleWithOperations, ValidatingWebhook,
        ValidatingWebhookConfiguration, WebhookClientConfig,
    },
    apimachinery::pkg::apis::meta::v1::ObjectMeta,
};
use kube::{
    Api, Client,
    api::{Patch, PatchParams, PostParams},
};

use super::{MUTATE_PATH, VALIDATE_PATH, WebhookConfig};

/// Name of the validating webhook and its configuration.
pub const VALIDATING_NAME: &str = "validation.workspace.kaito.sh";
/// Name of the defaulting webhook and its configuration.
pub const MUTATING_NAME: &str = "mutation.workspace.kaito.sh";

fn rules() -> Vec<RuleWithOperations> {
    vec![RuleWithOperations {
        api_groups: Some(vec!["kaito.sh".into()]),
        api_versions: Some(vec!["v1alpha1".into(), "v1beta1".into()]),
        operations: Some(vec!["CREATE".into(), "UPDATE".into()]),
        resources: Some(vec!["workspaces".into()]),
        scope: Some("Namespaced".into()),
    }]
}

fn client_config(url: &str, path: &str, ca: &str) -> WebhookClientConfig {
    WebhookClientConfig {
        url: Some(format!("{}{path}", url.trim_end_matches('/'))),
        ca_bundle: Some(ByteString(ca.as_bytes().to_vec())),
        service: None,
    }
}

/// The validating configuration for a webhook reached by URL.
pub fn validating(url: &str, ca: &str) -> ValidatingWebhookConfiguration {
    ValidatingWebhookConfiguration {
        metadata: ObjectMeta {
            name: Some(VALIDATING_NAME.into()),
            ..Default::default()
        },
        webhooks: Some(vec![ValidatingWebhook {
            name: VALIDATING_NAME.into(),
            client_config: client_config(url, VALIDATE_PATH, ca),
            rules: Some(rules()),
            failure_policy: Some("Fail".into()),
            side_effects: "None".into(),
            admission_review_versions: vec!["v1".into()],
            ..Default::default()
        }]),
    }
}

/// The defaulting configuration for a webhook reached by URL.
pub fn mutating(url: &str, ca: &str) -> MutatingWebhookConfiguration {
    MutatingWebhookConfiguration {
        metadata: ObjectMeta {
            name: Some(MUTATING_NAME.into()),
            ..Default::default()
        },
        webhooks: Some(vec![MutatingWebhook {
            name: MUTATING_NAME.into(),
            client_config: client_config(url, MUTATE_PATH, ca),
            rules: Some(rules()),
            failure_policy: Some("Fail".into()),
            side_effects: "None".into(),
            admission_review_versions: vec!["v1".into()],
            reinvocation_policy: Some("Never".into()),
            ..Default::default()
        }]),
    }
}

/// Points both webhook configurations at this process with the given CA.
pub async fn register(client: &Client, cfg: &WebhookConfig, ca_pem: &str) -> kube::Result<()> {
    let vapi: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    let mapi: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    if let Some(url) = &cfg.url {
        create_missing(&vapi, VALIDATING_NAME, validating(url, ca_pem)).await?;
        create_missing(&mapi, MUTATING_NAME, mutating(url, ca_pem)).await?;
    }
    let base = cfg.url.as_deref().map(|u| u.trim_end_matches('/'));
    let vurl = base.map(|b| format!("{b}{VALIDATE_PATH}"));
    let murl = base.map(|b| format!("{b}{MUTATE_PATH}"));
    inject(&vapi, VALIDATING_NAME, vurl, ca_pem).await?;
    inject(&mapi, MUTATING_NAME, murl, ca_pem).await?;
    tracing::info!("Registered the webhook CA bundle");
    Ok(())
}

/// Sets the CA bundle (and URL) of the named webhook inside its configuration.
async fn inject<K>(api: &Api<K>, name: &str, url: Option<String>, ca_pem: &str) -> kube::Result<()>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    if api.get_opt(name).await?.is_none() {
        tracing::warn!(
            configuration = name,
            "Webhook configuration not found; install the chart"
        );
        return Ok(());
    }
    let ca = serde_json::to_value(ByteString(ca_pem.as_bytes().to_vec())).unwrap_or_default();
    let mut config = serde_json::json!({ "caBundle": ca });
    if let Some(url) = url {
        config["url"] = serde_json::Value::String(url);
    }
    let patch = serde_json::json!({ "webhooks": [ { "name": name, "clientConfig": config } ] });
    api.patch(name, &PatchParams::default(), &Patch::Strategic(patch))
        .await?;
    Ok(())
}

async fn create_missing<K>(api: &Api<K>, name: &str, obj: K) -> kube::Result<()>
where
    K: kube::Resource + Clone + serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
{
    if api.get_opt(name).await?.is_none() {
        match api.create(&PostParams::default(), &obj).await {
            Ok(_) => tracing::info!(configuration = name, "Created webhook configuration"),
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
