//! The `runtime.v1.Images` service.

use runtime_proto::v1 as pb;
use runtime_proto::v1::images_server::Images;
use tokio::io::AsyncWriteExt;
use tonic::{Request, Response, Status, Streaming};

use super::convert::image_info;
use super::detach::to_completion;
use crate::container::Manager;
use crate::error::Error;
use crate::image::ImageStore;

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
        // Spool to a file next to the image store, then unpack from it. The
        // spool goes when this handler ends, even if tonic drops it because
        // the client went away; the unpacking runs to its end regardless.
        let spool = Spool(self.images.spool_path());
        let tmp = spool.0.clone();
        let result = async {
            let mut file = tokio::fs::File::create(&tmp).await.map_err(|e| Error::io("create import file", e))?;
            while let Some(msg) = stream.message().await? {
                if let Some(Part::Chunk(data)) = msg.part {
                    file.write_all(&data).await.map_err(|e| Error::io("write import file", e))?;
                }
            }
            file.flush().await.map_err(|e| Error::io("write import file", e))?;
            crate::failpoint::hit("import:spooled");
            let (images, tmp) = (self.images.clone(), tmp.clone());
            to_completion(async move { images.import(&name, tmp).await }).await
        }
        .await;
        drop(spool);
        Ok(Response::new(pb::ImportImageResponse { image: Some(image_info(&result?)) }))
    }

    async fn remove_image(
        &self,
        req: Request<pb::RemoveImageRequest>,
    ) -> Result<Response<pb::RemoveImageResponse>, Status> {
        let reference = req.into_inner().image;
        let image = self.images.resolve(&reference)?;
        let user = self.containers.user_of_image(&image.id)?;
        let removed = self.images.remove(&reference, user).await?;
        Ok(Response::new(pb::RemoveImageResponse { id: removed.id }))
    }
}

/// An import's spooled tarball, removed when dropped.
struct Spool(std::path::PathBuf);

impl Drop for Spool {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
