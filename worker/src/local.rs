//! The worker without NATS: the gateway's embedded mode calls it in-process.
//!
//! [`LocalWorker`] takes the same messages as the NATS worker ([`EmbedRequest`],
//! [`WindowRequest`]) and answers with the same replies ([`EmbedReply`], [`WindowResult`]),
//! through the same validation, inference thread and micro-batching; only the transport is
//! missing. Chunked enrollments (`parts > 1`) are a NATS transport feature and are refused:
//! in-process, the whole PCM travels in the request.
//!
//! Backpressure: at most [`Config::max_in_flight`] windows and
//! [`Config::max_embeds_in_flight`] enrollments are inside the engine at once; further callers
//! wait for a permit (the gateway bounds how many it lets wait per session).

use std::sync::Arc;
use std::time::Instant;

use diglett_model::compute::Compute;
use diglett_schemas::{
    EmbedReply, EmbedRequest, ErrorKind, SCHEMA_VERSION, WindowRequest, WindowResult,
};
use tokio::sync::Semaphore;

use crate::config::Config;
use crate::engine::{EngineExit, Models};
use crate::metrics::Metrics;
use crate::service::{self, Ctx, Rejected, RunError};

/// An in-process worker. Cloning shares it.
#[derive(Debug, Clone)]
pub struct LocalWorker {
    ctx: Arc<Ctx>,
    windows: Arc<Semaphore>,
    embeds: Arc<Semaphore>,
}

impl LocalWorker {
    /// Loads the models (unless given) and starts the inference thread. The returned
    /// [`EngineExit`] resolves if that thread ends.
    ///
    /// # Errors
    /// Loading the models, the compute pool, or the thread failed.
    pub async fn start(
        config: Config,
        models: Option<Arc<Models>>,
    ) -> Result<(Self, EngineExit), RunError> {
        let models = service::load_models(models).await?;
        let compute = Compute::new(config.compute_threads)?;
        let metrics = Arc::new(Metrics::new());
        let (engine, exit) = service::start_engine(&config, models, compute, &metrics)?;
        let worker = Self {
            windows: Arc::new(Semaphore::new(config.max_in_flight.max(1))),
            embeds: Arc::new(Semaphore::new(config.max_embeds_in_flight.max(1))),
            ctx: Arc::new(Ctx {
                client: None,
                engine,
                metrics,
                config,
            }),
        };
        Ok((worker, exit))
    }

    /// The worker's metrics (`diglett_worker_*`), for the host's `/metrics`.
    pub fn metrics(&self) -> &Metrics {
        &self.ctx.metrics
    }

    /// Answers an enrollment request (single-part only).
    pub async fn embed(&self, req: EmbedRequest) -> EmbedReply {
        let id = req.request_id.clone();
        let result = if req.parts > 1 || req.parts_subject.is_some() {
            Err((
                id,
                Rejected::new(
                    ErrorKind::BadRequest,
                    "chunked enrollment needs a NATS connection; send the PCM in one part",
                ),
            ))
        } else {
            match self.embeds.acquire().await {
                Ok(_permit) => crate::embed::embed_decoded(&self.ctx, req).await,
                Err(_) => Err((id, Rejected::new(ErrorKind::Internal, "worker closed"))),
            }
        };
        let (request_id, outcome) = crate::embed::embed_outcome(&self.ctx, result);
        EmbedReply {
            v: SCHEMA_VERSION,
            request_id,
            outcome,
        }
    }

    /// Answers a window request.
    pub async fn window(&self, req: WindowRequest) -> WindowResult {
        let received = Instant::now();
        let session = req.session.clone();
        let _permit = self.windows.acquire().await;
        crate::window::window(&self.ctx, &session, Ok(req), received).await
    }
}
