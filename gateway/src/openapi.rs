//! The OpenAPI document (`/openapi.json`) and the interactive page (`/docs`).

use axum::Json;
use axum::Router;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::{error, rest};

#[derive(Debug)]
struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API key from DIGLETT_API_KEYS (only when keys are configured)",
                    ))
                    .build(),
            ),
        );
    }
}

/// The API description.
#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "Diglett",
        description = "Real-time speaker verification. The streaming protocol is a WebSocket at \
                       /v1/stream (alias /ws/stream), documented in the README."
    ),
    paths(
        rest::embed,
        rest::create_speaker,
        rest::add_samples,
        rest::list_speakers,
        rest::get_speaker,
        rest::delete_speaker,
        rest::verify,
        rest::healthz,
        rest::readyz
    ),
    components(schemas(error::ErrorBody, error::ErrorDetail)),
    modifiers(&Security),
    tags(
        (name = "enrollment", description = "Voice signatures"),
        (name = "profiles", description = "Speaker profiles kept by the server"),
        (name = "verification", description = "Scoring a recording"),
        (name = "operations", description = "Health and readiness")
    )
)]
pub struct ApiDoc;

/// The document as served: [`ApiDoc`] with its links' field names mended. utoipa 5.5 writes a
/// Link Object's fields as `operation_id` / `operation_ref` / `request_body`, which OpenAPI
/// readers do not know (schemathesis: "missing both 'operationRef' and 'operationId'").
///
/// The multipart forms also get `additionalProperties: false`: the server refuses a field it
/// does not know (400 `unknown_field`), and the document says so.
pub fn document_json() -> serde_json::Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
    if let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(serde_json::Value::as_object_mut)
    {
        for (name, schema) in schemas.iter_mut() {
            if name.ends_with("Form")
                && let Some(schema) = schema.as_object_mut()
            {
                schema.insert("additionalProperties".into(), false.into());
            }
        }
    }
    let operations = doc
        .get_mut("paths")
        .and_then(serde_json::Value::as_object_mut)
        .into_iter()
        .flat_map(|paths| paths.values_mut())
        .filter_map(serde_json::Value::as_object_mut)
        .flat_map(|path| path.values_mut());
    for op in operations {
        let Some(responses) = op
            .get_mut("responses")
            .and_then(serde_json::Value::as_object_mut)
        else {
            continue;
        };
        let links = responses
            .values_mut()
            .filter_map(|r| {
                r.get_mut("links")
                    .and_then(serde_json::Value::as_object_mut)
            })
            .flat_map(|links| links.values_mut())
            .filter_map(serde_json::Value::as_object_mut);
        for link in links {
            for (from, to) in [
                ("operation_id", "operationId"),
                ("operation_ref", "operationRef"),
                ("request_body", "requestBody"),
            ] {
                if let Some(v) = link.remove(from) {
                    link.insert(to.to_owned(), v);
                }
            }
        }
    }
    doc
}

/// `GET /openapi.json`.
pub async fn document() -> Json<serde_json::Value> {
    Json(document_json())
}

/// `GET /docs`: Swagger UI (served from the binary, no CDN) reading `/openapi.json`.
pub fn docs_routes() -> Router {
    let def = swagger_ui_dist::ApiDefinition {
        uri_prefix: "/docs",
        api_definition: swagger_ui_dist::OpenApiSource::Uri("/openapi.json"),
        title: Some("Diglett API"),
    };
    swagger_ui_dist::generate_routes(def)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The links from `POST /v1/speakers` name their target operations as OpenAPI spells it,
    /// and every target exists.
    #[test]
    fn links_name_existing_operations() {
        let doc = document_json();
        let links = &doc["paths"]["/v1/speakers"]["post"]["responses"]["201"]["links"];
        let links = links.as_object().unwrap();
        assert_eq!(links.len(), 3);
        let ids: Vec<String> = doc["paths"]
            .as_object()
            .unwrap()
            .values()
            .flat_map(|p| p.as_object().unwrap().values())
            .filter_map(|op| op["operationId"].as_str().map(str::to_owned))
            .collect();
        for (name, link) in links {
            let target = link["operationId"].as_str().unwrap();
            assert!(ids.iter().any(|i| i == target), "{name} → {target}");
            assert!(link.get("operation_id").is_none());
            assert_eq!(link["parameters"]["id"], "$response.body#/id");
        }
    }
}
