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

/// `GET /openapi.json`.
pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
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
