//! `polaris.v1.UserService` over `polaris_app::users`.

use polaris_app::AppError;
use polaris_app::users::{
    self, CreateUserRequest, Credentials, ListUsersQuery, PatchUser, RotateCredentialsRequest, UserRequested,
    UserRotated, UserUpdated, UserView,
};
use polaris_domain::acl::{AclRule, UserQuotas};
use polaris_domain::user::UserAuthentication;
use serde_json::{Value, json};
use tonic::{Request, Response, Status};

use crate::clusters::change;
use crate::convert::{self, instant, opt_text, resource_id, text, timestamp};
use crate::door::{Door, Rest};
use crate::pb::{self, user_service_server::UserService};

/// A protobuf ACL rule as the domain reads it (the words are the REST API's): an unknown word is a 400 naming the
/// field, as over REST.
fn acl(r: pb::AclRule, i: usize) -> Result<AclRule, AppError> {
    let resource = r.resource.unwrap_or_default();
    let or = |s: String, default: &str| if s.is_empty() { default.to_owned() } else { s };
    let value = json!({
        "resource": {
            "type": text(resource.r#type, "acls.resource.type")?,
            "name": opt_text(resource.name, "acls.resource.name")?,
            "pattern": or(resource.pattern, "literal"),
        },
        "operations": r.operations,
        "host": or(r.host, "*"),
        "effect": or(r.effect, "allow"),
    });
    serde_json::from_value(value)
        .map_err(|e| AppError::validation(format!("acls[{i}]: {e}"), Some(&format!("acls[{i}]"))))
}

fn acls(rules: Vec<pb::AclRule>) -> Result<Vec<AclRule>, AppError> {
    rules.into_iter().enumerate().map(|(i, r)| acl(r, i)).collect()
}

fn quotas(q: pb::UserQuotas) -> UserQuotas {
    UserQuotas {
        producer_byte_rate: q.producer_byte_rate,
        consumer_byte_rate: q.consumer_byte_rate,
        request_percentage: q.request_percentage,
    }
}

/// A domain word as the REST API spells it.
fn word(v: impl serde::Serialize) -> String {
    match serde_json::to_value(v) {
        Ok(Value::String(s)) => s,
        _ => String::new(),
    }
}

fn user(v: UserView) -> pb::User {
    pb::User {
        id: v.id.to_string(),
        cluster_id: v.cluster_id.to_string(),
        name: v.name,
        authentication: word(v.authentication),
        acls: v
            .acls
            .into_iter()
            .map(|r| pb::AclRule {
                resource: Some(pb::AclResource {
                    r#type: word(r.resource.type_),
                    name: r.resource.name,
                    pattern: word(r.resource.pattern),
                }),
                operations: r.operations.into_iter().map(word).collect(),
                host: r.host,
                effect: word(r.effect),
            })
            .collect(),
        quotas: Some(pb::UserQuotas {
            producer_byte_rate: v.quotas.producer_byte_rate,
            consumer_byte_rate: v.quotas.consumer_byte_rate,
            request_percentage: v.quotas.request_percentage,
        }),
        credentials_generation: v.credentials_generation,
        secret_name: v.secret_name,
        status: v.status,
        version: v.version,
        created_at: Some(timestamp(v.created_at)),
        updated_at: Some(timestamp(v.updated_at)),
    }
}

fn credentials(c: Credentials) -> pb::Credentials {
    pb::Credentials {
        username: c.username,
        password: c.password,
        mechanism: c.mechanism,
        security_protocol: c.security_protocol,
        bootstrap_servers: c.bootstrap_servers,
        generation: c.generation,
    }
}

pub fn create_input(r: pb::CreateUserRequest) -> Result<CreateUserRequest, AppError> {
    let authentication = match r.authentication.as_str() {
        "" => None,
        a => Some(
            serde_json::from_value::<UserAuthentication>(json!(a))
                .map_err(|_| AppError::validation("scram-sha-512 or tls", Some("authentication")))?,
        ),
    };
    Ok(CreateUserRequest {
        name: text(r.name, "name")?,
        authentication,
        acls: Some(acls(r.acls)?),
        quotas: r.quotas.map(quotas),
    })
}

pub fn patch_input(r: pb::UpdateUserRequest) -> Result<PatchUser, AppError> {
    if !r.replace_acls && !r.acls.is_empty() {
        return Err(AppError::validation("set replace_acls to replace the user's ACL rules", Some("replace_acls")));
    }
    Ok(PatchUser {
        acls: if r.replace_acls { Some(acls(r.acls)?) } else { None },
        quotas: r.quotas.map(quotas),
        expected_version: r.expected_version,
    })
}

fn path(cluster: &str, name: &str) -> String {
    format!("/v1/clusters/{cluster}/users/{name}")
}

/// The answer kept for a repeat of a create: without the password, saying so.
fn forget_created(out: &mut pb::CreateUserResponse) {
    if let Some(pb::create_user_response::Result::Accepted(a)) = out.result.as_mut()
        && a.credentials.take().is_some()
    {
        a.credentials_shown = false;
    }
}

/// The answer kept for a repeat of a rotation: without the password, saying so.
fn forget_rotated(out: &mut pb::RotateCredentialsResponse) {
    if let Some(pb::rotate_credentials_response::Result::Rotated(r)) = out.result.as_mut()
        && r.credentials.take().is_some()
    {
        r.credentials_shown = false;
    }
}

#[tonic::async_trait]
impl UserService for Door {
    async fn create_user(
        &self,
        req: Request<pb::CreateUserRequest>,
    ) -> Result<Response<pb::CreateUserResponse>, Status> {
        let dry_run = req.get_ref().dry_run;
        let rest = Rest {
            command: "users_create",
            method: "POST",
            path: format!("/v1/clusters/{}/users", req.get_ref().cluster_id),
        };
        let rpc = "/polaris.v1.UserService/CreateUser";
        self.write_shown_once(rpc, req, rest, dry_run, forget_created, async |app, caller, r| {
            use pb::create_user_response::Result as R;
            let cluster = resource_id(&r.cluster_id, "cluster")?;
            match users::create(app, caller, cluster, create_input(r)?, dry_run).await? {
                UserRequested::Accepted(a) => {
                    let accepted = pb::UserAccepted {
                        user: Some(user(a.user)),
                        operation: Some(convert::operation(a.operation)),
                        credentials: a.credentials.map(credentials),
                        credentials_shown: a.credentials_shown,
                    };
                    Ok((202, pb::CreateUserResponse { result: Some(R::Accepted(accepted)) }))
                }
                UserRequested::Planned(p) => {
                    Ok((200, pb::CreateUserResponse { result: Some(R::Plan(convert::plan(p))) }))
                }
            }
        })
        .await
    }

    async fn get_user(&self, req: Request<pb::GetUserRequest>) -> Result<Response<pb::User>, Status> {
        self.read(req, async |app, caller, r| {
            let as_of = r.as_of.as_ref().map(|t| instant(t, "as_of")).transpose()?;
            let cluster = resource_id(&r.cluster_id, "cluster")?;
            Ok(user(users::get(app, caller, cluster, &r.name, as_of).await?))
        })
        .await
    }

    async fn list_users(&self, req: Request<pb::ListUsersRequest>) -> Result<Response<pb::ListUsersResponse>, Status> {
        self.read(req, async |app, caller, r| {
            let cluster = resource_id(&r.cluster_id, "cluster")?;
            let q = ListUsersQuery { page_size: r.page_size, page_token: opt_text(r.page_token, "page_token")? };
            let page = users::list(app, caller, cluster, q).await?;
            Ok(pb::ListUsersResponse {
                items: page.items.into_iter().map(user).collect(),
                next_page_token: page.next_page_token,
            })
        })
        .await
    }

    async fn update_user(
        &self,
        req: Request<pb::UpdateUserRequest>,
    ) -> Result<Response<pb::UpdateUserResponse>, Status> {
        let dry_run = req.get_ref().dry_run;
        let rest = Rest {
            command: "users_update",
            method: "PATCH",
            path: path(&req.get_ref().cluster_id, &req.get_ref().name),
        };
        self.write("/polaris.v1.UserService/UpdateUser", req, rest, dry_run, async |app, caller, r| {
            use pb::update_user_response::Result as R;
            let cluster = resource_id(&r.cluster_id, "cluster")?;
            let name = text(r.name.clone(), "name")?;
            match users::update(app, caller, cluster, &name, patch_input(r)?, None, dry_run).await? {
                UserUpdated::Planned(p) => {
                    Ok((200, pb::UpdateUserResponse { result: Some(R::Plan(convert::plan(p))) }))
                }
                UserUpdated::Changed(c) => {
                    let code = if c.operation.is_some() { 202 } else { 200 };
                    let changed =
                        pb::UserChanged { user: Some(user(c.user)), operation: c.operation.map(convert::operation) };
                    Ok((code, pb::UpdateUserResponse { result: Some(R::Changed(changed)) }))
                }
            }
        })
        .await
    }

    async fn rotate_credentials(
        &self,
        req: Request<pb::RotateCredentialsRequest>,
    ) -> Result<Response<pb::RotateCredentialsResponse>, Status> {
        let dry_run = req.get_ref().dry_run;
        let rest = Rest {
            command: "users_rotate",
            method: "POST",
            path: format!("{}/rotate", path(&req.get_ref().cluster_id, &req.get_ref().name)),
        };
        let rpc = "/polaris.v1.UserService/RotateCredentials";
        self.write_shown_once(rpc, req, rest, dry_run, forget_rotated, async |app, caller, r| {
            use pb::rotate_credentials_response::Result as R;
            let cluster = resource_id(&r.cluster_id, "cluster")?;
            let name = text(r.name, "name")?;
            let body = RotateCredentialsRequest { expected_version: r.expected_version };
            match users::rotate(app, caller, cluster, &name, body, None, dry_run).await? {
                UserRotated::Rotated(rotated) => {
                    let rotated = pb::CredentialsRotated {
                        operation: Some(convert::operation(rotated.operation)),
                        credentials: rotated.credentials.map(credentials),
                        credentials_shown: rotated.credentials_shown,
                    };
                    Ok((202, pb::RotateCredentialsResponse { result: Some(R::Rotated(rotated)) }))
                }
                UserRotated::Planned(p) => {
                    Ok((200, pb::RotateCredentialsResponse { result: Some(R::Plan(convert::plan(p))) }))
                }
            }
        })
        .await
    }

    async fn delete_user(&self, req: Request<pb::DeleteUserRequest>) -> Result<Response<pb::ChangeResponse>, Status> {
        let dry_run = req.get_ref().dry_run;
        let rest = Rest {
            command: "users_delete",
            method: "DELETE",
            path: path(&req.get_ref().cluster_id, &req.get_ref().name),
        };
        self.write("/polaris.v1.UserService/DeleteUser", req, rest, dry_run, async |app, caller, r| {
            let cluster = resource_id(&r.cluster_id, "cluster")?;
            let name = text(r.name, "name")?;
            Ok(change(users::delete(app, caller, cluster, &name, r.expected_version, None, dry_run).await?))
        })
        .await
    }
}
