//! Namespaces that are ready for pods.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::{
    Api, Client,
    api::{ObjectMeta, PostParams},
    runtime::wait::await_condition,
};

use crate::Error;

/// Creates a namespace (or takes the existing one) and waits for its `default` service
/// account, without which the apiserver refuses pods that name none.
pub async fn create_namespace(client: &Client, name: &str) -> Result<Namespace, Error> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let wanted = Namespace {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    let namespace = match namespaces.create(&PostParams::default(), &wanted).await {
        Err(kube::Error::Api(status)) if status.code == 409 => namespaces.get(name).await?,
        created => created?,
    };

    // The controller manager's service-account controller creates it shortly after.
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), name);
    let exists = await_condition(accounts, "default", |account: Option<&ServiceAccount>| {
        account.is_some()
    });
    match tokio::time::timeout(Duration::from_secs(60), exists).await {
        Ok(Ok(_)) => Ok(namespace),
        Ok(Err(error)) => Err(Error::Wait(error.to_string())),
        Err(_) => Err(Error::Timeout(format!(
            "the default service account in {name}"
        ))),
    }
}
