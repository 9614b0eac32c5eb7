//! The `runtime.v1.Images` service.

use runtime_proto::v1 as pb;
use runtime_proto::v1::images_server::Images;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::convert::image_info;
use super::detach::to_completion;
use crate::container::Manager;
use crate::error::Error;
use crate::image::pull::{Progress, PullOptions};
use crate::image::ImageStore;
use crate::util::TempFile;

pub struct ImagesApi {
    images: ImageStore,
    /// Asked whether a container still uses an image before it goes.
    containers: Manager,
}

impl ImagesApi {
    pub fn new(images: ImageStore, containers: Manager) -> Self {
        ImagesApi { images, containers }
    }
}

#[tonic::async_trait]
impl Images for ImagesApi {
    async fn list_images(&self, _: Request<pb::ListImagesRequest>) -> Result<Response<pb::ListImagesResponse>, Status> {
        let images = self.images.list()?.iter().map(image_info).collect();
        Ok(Response::new(pb::ListImagesResponse { images }))
    }

    async fn import_image(
        &self,
        req: Request<Streaming<pb::ImportImageRequest>>,
    ) -> Result<Response<pb::ImportImageResponse>, Status> {
        use pb::import_image_request::Part;
        let mut stream = req.into_inner();
        let name = match stream.message().await?.and_then(|m| m.part) {
            Some(Part::Name(name)) if !name.is_empty() => name,
            _ => return Err(Error::InvalidArgument("import must start with the image name".into()).into()),
        };
        let chunk = |m: pb::ImportImageRequest| match m.part {
            Some(Part::Chunk(data)) => Some(data),
            _ => None,
        };
        let images = self.images.clone();
        let work = |tmp| async move { images.import(&name, tmp).await };
        let image = spooled(&self.images, stream, chunk, work).await?;
        Ok(Response::new(pb::ImportImageResponse { image: Some(image_info(&image)) }))
    }

    async fn remove_image(
        &self,
        req: Request<pb::RemoveImageRequest>,
    ) -> Result<Response<pb::RemoveImageResponse>, Status> {
        let r = req.into_inner();
        let image = self.images.resolve(&r.image)?;
        let user = self.containers.user_of_image(&image.id)?;
        let removed = self.images.remove(&r.image, user, r.force).await?;
        let untagged = self.images.resolve(&removed.id).is_ok();
        Ok(Response::new(pb::RemoveImageResponse { id: removed.id, untagged }))
    }

    async fn inspect_image(&self, req: Request<pb::InspectImageRequest>) -> Result<Response<pb::ImageInfo>, Status> {
        Ok(Response::new(image_info(&self.images.resolve(&req.into_inner().image)?)))
    }

    async fn check_login(
        &self,
        req: Request<pb::CheckLoginRequest>,
    ) -> Result<Response<pb::CheckLoginResponse>, Status> {
        let r = req.into_inner();
        let auth = r.auth.unwrap_or_default();
        self.images.check_login(&r.server, &auth.username, &auth.password).await?;
        Ok(Response::new(pb::CheckLoginResponse {}))
    }

    async fn tag_image(&self, req: Request<pb::TagImageRequest>) -> Result<Response<pb::ImageInfo>, Status> {
        let r = req.into_inner();
        Ok(Response::new(image_info(&self.images.tag(&r.source, &r.target).await?)))
    }

    async fn prune_images(
        &self,
        req: Request<pb::PruneImagesRequest>,
    ) -> Result<Response<pb::PruneImagesResponse>, Status> {
        let all = req.into_inner().all;
        let (mut deleted, mut reclaimed) = (Vec::new(), 0);
        for image in self.images.list()? {
            let unnamed = image.names().next().is_none();
            if !(all || unnamed) || image.name == crate::image::DEFAULT_IMAGE {
                continue;
            }
            if self.containers.user_of_image(&image.id)?.is_some() {
                continue;
            }
            let removed = self.images.remove(&image.id, None, false).await?;
            reclaimed += removed.size;
            deleted.push(removed.id);
        }
        Ok(Response::new(pb::PruneImagesResponse { deleted, reclaimed }))
    }

    async fn load_images(
        &self,
        req: Request<Streaming<pb::LoadImagesRequest>>,
    ) -> Result<Response<pb::LoadImagesResponse>, Status> {
        let images = self.images.clone();
        let work = |tmp| async move { images.load(tmp).await };
        let loaded = spooled(&self.images, req.into_inner(), |m: pb::LoadImagesRequest| Some(m.chunk), work).await?;
        let images = loaded.iter().map(image_info).collect();
        Ok(Response::new(pb::LoadImagesResponse { images }))
    }

    async fn image_history(
        &self,
        req: Request<pb::ImageHistoryRequest>,
    ) -> Result<Response<pb::ImageHistoryResponse>, Status> {
        let image = self.images.resolve(&req.into_inner().image)?;
        let images = self.images.clone();
        let steps = tokio::task::spawn_blocking(move || images.history(&image))
            .await
            .map_err(|e| Status::internal(e.to_string()))??;
        let entries = steps
            .into_iter()
            .map(|s| pb::HistoryEntry {
                created: s.created,
                created_by: s.created_by,
                size: s.size,
                comment: s.comment,
            })
            .collect();
        Ok(Response::new(pb::ImageHistoryResponse { entries }))
    }

    type SaveImagesStream = ReceiverStream<Result<pb::SaveImagesResponse, Status>>;

    async fn save_images(
        &self,
        req: Request<pb::SaveImagesRequest>,
    ) -> Result<Response<Self::SaveImagesStream>, Status> {
        let refs = req.into_inner().images;
        for r in &refs {
            self.images.resolve(r)?;
        }
        let (tx, rx) = mpsc::channel(8);
        let images = self.images.clone();
        tokio::task::spawn_blocking(move || {
            let out = std::io::BufWriter::with_capacity(SAVE_CHUNK, ChunkWriter(tx.clone()));
            if let Err(e) = images.save(&refs, out) {
                let _ = tx.blocking_send(Err(Status::from(e)));
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    type PullImageStream = ReceiverStream<Result<pb::PullImageResponse, Status>>;

    async fn pull_image(&self, req: Request<pb::PullImageRequest>) -> Result<Response<Self::PullImageStream>, Status> {
        use pb::pull_image_response::Event;
        let r = req.into_inner();
        let opts = PullOptions {
            reference: r.image,
            platform: r.platform,
            auth: r.auth.filter(|a| !a.username.is_empty()).map(|a| (a.username, a.password)),
        };
        let (tx, rx) = mpsc::channel(64);
        let (progress_tx, mut progress) = mpsc::channel(64);
        let images = self.images.clone();
        // The pull runs to its end whatever the client does; its progress
        // goes to the client while it listens.
        let pull = tokio::spawn(async move { images.pull(opts, progress_tx).await });
        tokio::spawn(async move {
            while let Some(p) = progress.recv().await {
                let event = match p {
                    Progress::Layer { id, status, current, total } => {
                        Event::Progress(pb::PullProgress { id, status: status.to_string(), current, total })
                    }
                    Progress::Digest(d) => Event::Digest(d),
                };
                let _ = tx.send(Ok(pb::PullImageResponse { event: Some(event) })).await;
            }
            let last = match pull.await {
                Ok(Ok(image)) => Ok(pb::PullImageResponse { event: Some(Event::Image(image_info(&image))) }),
                Ok(Err(e)) => Err(Status::from(e)),
                Err(e) => Err(Status::internal(format!("pull task failed: {e}"))),
            };
            let _ = tx.send(last).await;
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

/// Spools a client stream's bytes (`chunk` picks them from each message)
/// to a file next to the image store, then runs `work` on it to its end.
/// The spool goes when this returns, even if tonic drops the handler
/// because the client went away; one left by a crash goes at start.
async fn spooled<M, T, Fut>(
    images: &ImageStore,
    mut stream: Streaming<M>,
    chunk: impl Fn(M) -> Option<bytes::Bytes>,
    work: impl FnOnce(std::path::PathBuf) -> Fut,
) -> Result<T, Status>
where
    Fut: std::future::Future<Output = crate::error::Result<T>> + Send + 'static,
    T: Send + 'static,
{
    let spool = TempFile(images.spool_path());
    let mut file = tokio::fs::File::create(&spool.0).await.map_err(|e| Error::io("create spool file", e))?;
    while let Some(msg) = stream.message().await? {
        if let Some(data) = chunk(msg) {
            file.write_all(&data).await.map_err(|e| Error::io("write spool file", e))?;
        }
    }
    file.flush().await.map_err(|e| Error::io("write spool file", e))?;
    crate::failpoint::hit("import:spooled");
    to_completion(work(spool.0.clone())).await
}

/// Size of the chunks a save is streamed in.
const SAVE_CHUNK: usize = 1 << 20;

/// A save's output, sent to the client as it is written; fails once the
/// client went away, which ends the save.
struct ChunkWriter(mpsc::Sender<Result<pb::SaveImagesResponse, Status>>);

impl std::io::Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let chunk = pb::SaveImagesResponse { chunk: bytes::Bytes::copy_from_slice(data) };
        self.0.blocking_send(Ok(chunk)).map_err(|_| std::io::ErrorKind::BrokenPipe)?;
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
