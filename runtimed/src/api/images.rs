//! The `runtime.v1.Images` service.

use runtime_proto::v1 as pb;
use runtime_proto::v1::images_server::Images;
use tokio::io::AsyncWriteExt;
use tonic::{Request, Response, Status, Streaming};

use super::convert::image_info;
use crate::container::Manager;
use crate::error::Error;

pub struct ImagesApi {
    m: Manager,
}

impl ImagesApi {
    pub fn new(m: Manager) -> Self {
        ImagesApi { m }
    }
}

#[tonic::async_trait]
impl Images for ImagesApi {
    async fn list(&self, _: Request<pb::ListImagesRequest>) -> Result<Response<pb::ListImagesResponse>, Status> {
        let images = self.m.images().list()?.iter().map(image_info).collect();
        Ok(Response::new(pb::ListImagesResponse { images }))
    }

    async fn import(&self, req: Request<Streaming<pb::ImportImageRequest>>) -> Result<Response<pb::ImageInfo>, Status> {
        use pb::import_image_request::Part;
        let mut stream = req.into_inner();
        let name = match stream.message().await?.and_then(|m| m.part) {
            Some(Part::Name(name)) if !name.is_empty() => name,
            _ => return Err(Error::InvalidArgument("import must start with the image name".into()).into()),
        };
        // Spool to a file next to the image store, then unpack from it.
        let tmp = self.m.config().images_dir().join(format!(".import-{}.tar", crate::util::random_id()));
        let result = async {
            let mut file = tokio::fs::File::create(&tmp).await.map_err(|e| Error::io("create import file", e))?;
            while let Some(msg) = stream.message().await? {
                if let Some(Part::Chunk(data)) = msg.part {
                    file.write_all(&data).await.map_err(|e| Error::io("write import file", e))?;
                }
            }
            file.flush().await.map_err(|e| Error::io("write import file", e))?;
            Ok::<_, Status>(self.m.images().import(&name, tmp.clone()).await?)
        }
        .await;
        let _ = tokio::fs::remove_file(&tmp).await;
        Ok(Response::new(image_info(&result?)))
    }

    async fn remove(&self, req: Request<pb::RemoveImageRequest>) -> Result<Response<pb::RemoveImageResponse>, Status> {
        let reference = req.into_inner().image;
        let image = self.m.images().resolve(&reference)?;
        let user = self.m.user_of_image(&image.id)?;
        let removed = self.m.images().remove(&reference, user).await?;
        Ok(Response::new(pb::RemoveImageResponse { id: removed.id }))
    }
}
