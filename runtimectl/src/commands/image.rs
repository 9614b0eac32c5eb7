//! Image commands.

use runtime_proto::v1 as pb;
use tokio::io::AsyncReadExt;

use super::for_each;
use crate::cli::Format;
use crate::client::Client;
use crate::error::{CliError, Result};
use crate::output;

const CHUNK: usize = 1 << 20;

type Input = (Box<dyn tokio::io::AsyncRead + Unpin + Send>, Option<u64>);

/// A file to send (with its size, for the progress bar), or stdin for `-`.
async fn open_input(file: &str) -> Result<Input> {
    if file == "-" {
        return Ok((Box::new(tokio::io::stdin()), None));
    }
    let f = tokio::fs::File::open(file).await.map_err(|e| CliError::new(format!("open {file}: {e}")))?;
    let size = f.metadata().await.ok().map(|m| m.len());
    Ok((Box::new(f), size))
}

/// Sends what `reader` gives as request messages made by `wrap`, until
/// its end or until the daemon stops listening.
async fn send_chunks<T>(
    reader: &mut (dyn tokio::io::AsyncRead + Unpin + Send),
    tx: tokio::sync::mpsc::Sender<T>,
    wrap: impl Fn(bytes::Bytes) -> T,
    bar: Option<indicatif::ProgressBar>,
) -> std::io::Result<()> {
    loop {
        let mut buf = vec![0u8; CHUNK];
        let n = reader.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        buf.truncate(n);
        if let Some(bar) = &bar {
            bar.inc(n as u64);
        }
        if tx.send(wrap(buf.into())).await.is_err() {
            return Ok(());
        }
    }
}

/// `load`: the archive to the daemon in chunks, then what it loaded.
pub async fn load(client: &Client, a: crate::cli::LoadArgs) -> Result<i32> {
    let file = a.input.clone().unwrap_or_else(|| "-".into());
    let (mut reader, _) = open_input(&file).await?;
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let send = send_chunks(&mut reader, tx, |chunk| pb::LoadImagesRequest { chunk }, None);
    let mut images = client.images();
    let (sent, resp) = tokio::join!(send, images.load_images(tokio_stream::wrappers::ReceiverStream::new(rx)));
    sent.map_err(|e| CliError::new(format!("read {file}: {e}")))?;
    for image in resp?.into_inner().images {
        let names = if image.names.is_empty() { vec![format!("sha256:{}", image.id)] } else { image.names };
        for name in names {
            match (a.quiet, name.starts_with("sha256:")) {
                (true, _) => println!("{name}"),
                (false, true) => println!("Loaded image ID: {name}"),
                (false, false) => println!("Loaded image: {name}"),
            }
        }
    }
    Ok(0)
}

pub async fn import(client: &Client, name: String, file: String) -> Result<i32> {
    let (mut reader, size) = open_input(&file).await?;
    let progress = progress_bar(size);
    let bar = progress.clone();
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    use pb::import_image_request::Part;
    tx.try_send(pb::ImportImageRequest { part: Some(Part::Name(name)) }).map_err(|_| CliError::new("request queue"))?;
    let wrap = |chunk| pb::ImportImageRequest { part: Some(Part::Chunk(chunk)) };
    let send = send_chunks(&mut reader, tx, wrap, Some(bar));
    let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
    let mut images = client.images();
    let (sent, resp) = tokio::join!(send, images.import_image(stream));
    progress.finish_and_clear();
    sent.map_err(|e| CliError::new(format!("read {file}: {e}")))?;
    println!("{}", resp?.into_inner().image.map(|i| i.id).unwrap_or_default());
    Ok(0)
}

pub async fn ls(client: &Client, format: Format) -> Result<i32> {
    let images = client.images().list_images(pb::ListImagesRequest {}).await?.into_inner().images;
    if format == Format::Json {
        let rows: Vec<_> = images.iter().map(output::image_json).collect();
        println!("{}", serde_json::Value::Array(rows));
        return Ok(0);
    }
    // A row per name, as docker; an image without names shows <none>.
    let mut rows: Vec<Vec<String>> = Vec::new();
    for i in &images {
        let names = if i.names.is_empty() { vec![i.name.clone()] } else { i.names.clone() };
        for name in names {
            let (repo, tag) = output::repo_and_tag(&name);
            let id = output::short_id(&i.id).to_string();
            rows.push(vec![repo, tag, id, output::ago(i.created_at), output::human_size(i.size)]);
        }
    }
    output::print_table(&["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"], &rows);
    Ok(0)
}

/// `save`: the daemon's archive to a file (written beside it, renamed
/// into place when complete) or to stdout, which must not be a terminal.
pub async fn save(client: &Client, a: crate::cli::SaveArgs) -> Result<i32> {
    use std::io::{IsTerminal, Write};
    use tokio_stream::StreamExt;
    if a.output.is_none() && std::io::stdout().is_terminal() {
        return Err(CliError::new("cowardly refusing to save to a terminal. Use the -o flag or redirect"));
    }
    let tmp = a.output.as_ref().map(|o| format!("{o}.part"));
    let mut out: Box<dyn Write> = match &tmp {
        Some(t) => Box::new(std::fs::File::create(t).map_err(|e| CliError::new(format!("create {t}: {e}")))?),
        None => Box::new(std::io::stdout().lock()),
    };
    let result = async {
        let mut stream = client.images().save_images(pb::SaveImagesRequest { images: a.images }).await?.into_inner();
        while let Some(msg) = stream.next().await {
            out.write_all(&msg?.chunk)?;
        }
        out.flush()?;
        Ok::<_, CliError>(())
    }
    .await;
    drop(out);
    match (result, tmp, a.output) {
        (Ok(()), Some(t), Some(o)) => std::fs::rename(&t, &o).map_err(|e| CliError::new(format!("write {o}: {e}")))?,
        (Err(e), Some(t), _) => {
            let _ = std::fs::remove_file(t);
            return Err(e);
        }
        (r, _, _) => r?,
    }
    Ok(0)
}

/// `history`: docker's table, newest step first; only the top step has
/// an image id (`<missing>` for the others, as docker prints pulled ones).
pub async fn history(client: &Client, image: String) -> Result<i32> {
    let id = client.images().inspect_image(pb::InspectImageRequest { image: image.clone() }).await?.into_inner().id;
    let mut entries = client.images().image_history(pb::ImageHistoryRequest { image }).await?.into_inner().entries;
    entries.reverse();
    let rows: Vec<Vec<String>> = entries
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let shown = if i == 0 { output::short_id(&id).to_string() } else { "<missing>".into() };
            let created = if e.created == 0 { "<unknown>".into() } else { output::ago(e.created) };
            vec![shown, created, e.created_by.clone(), output::human_size(e.size), e.comment.clone()]
        })
        .collect();
    output::print_table(&["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"], &rows);
    Ok(0)
}

pub async fn tag(client: &Client, source: String, target: String) -> Result<i32> {
    client.images().tag_image(pb::TagImageRequest { source, target }).await?;
    Ok(0)
}

pub async fn inspect(client: &Client, names: Vec<String>) -> Result<i32> {
    super::inspect_each(names, |image| async move {
        let resp = client.images().inspect_image(pb::InspectImageRequest { image }).await?;
        Ok(Some(output::image_inspect_json(&resp.into_inner())))
    })
    .await
}

pub async fn prune(client: &Client, all: bool, force: bool) -> Result<i32> {
    if !force {
        let what = if all { "all images without at least one container" } else { "all dangling images" };
        eprint!("WARNING! This will remove {what}.\nAre you sure you want to continue? [y/N] ");
        let mut answer = String::new();
        let _ = std::io::stdin().read_line(&mut answer);
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            return Ok(0);
        }
    }
    let resp = client.images().prune_images(pb::PruneImagesRequest { all }).await?.into_inner();
    if !resp.deleted.is_empty() {
        println!("Deleted Images:");
        for id in &resp.deleted {
            println!("deleted: sha256:{id}");
        }
        println!();
    }
    println!("Total reclaimed space: {}", output::human_size(resp.reclaimed));
    Ok(0)
}

pub async fn rm(client: &Client, force: bool, names: Vec<String>) -> Result<i32> {
    for_each(names, |image| async move {
        let req = pb::RemoveImageRequest { image: image.clone(), force };
        let resp = client.images().remove_image(req).await?.into_inner();
        match resp.untagged {
            true => println!("Untagged: {image}"),
            false => println!("Deleted: {}", resp.id),
        }
        Ok(())
    })
    .await
}

/// Bytes sent so far, on stderr when it is a terminal (hidden otherwise):
/// a bar when the size is known, a counter for stdin.
fn progress_bar(size: Option<u64>) -> indicatif::ProgressBar {
    use indicatif::{ProgressBar, ProgressStyle};
    let (bar, template) = match size {
        Some(len) => (ProgressBar::new(len), "importing [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}"),
        None => (ProgressBar::no_length(), "importing {bytes} {bytes_per_sec}"),
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}
