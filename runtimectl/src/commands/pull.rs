//! `pull`, `login` and `logout`, and the pull before a `run` or `create`
//! of an image that is not here. Credentials live in docker's
//! `config.json`, so a `docker login` made here works too.

use std::collections::HashMap;
use std::io::{IsTerminal, Read};

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use runtime_proto::v1 as pb;
use tokio_stream::StreamExt;

use crate::auth;
use crate::cli::{CreateArgs, LoginArgs, PullArgs, PullPolicy};
use crate::client::Client;
use crate::error::{CliError, Result};

/// `pull`: progress on stderr, the result on stdout.
pub async fn pull(client: &Client, a: PullArgs) -> Result<String> {
    pull_to(client, a, false).await
}

/// Pulls an image, showing each layer's progress; returns its id. Before
/// a `run` the result line goes to stderr too: stdout is the container's.
async fn pull_to(client: &Client, a: PullArgs, all_to_stderr: bool) -> Result<String> {
    let req = pb::PullImageRequest {
        image: a.image.clone(),
        platform: a.platform.clone(),
        auth: auth::lookup(&a.image).map(|(username, password)| pb::RegistryAuth { username, password }),
    };
    let mut stream = client.images().pull_image(req).await?.into_inner();
    let mut shown = Progress::new(a.quiet);
    while let Some(msg) = stream.next().await {
        match msg?.event {
            Some(pb::pull_image_response::Event::Progress(p)) => shown.layer(&p),
            Some(pb::pull_image_response::Event::Digest(d)) => shown.line(&format!("Digest: {d}")),
            Some(pb::pull_image_response::Event::Image(image)) => {
                shown.done();
                let line = match a.quiet {
                    true => image.name,
                    false => format!("Status: image is up to date for {}", image.name),
                };
                match all_to_stderr {
                    true => eprintln!("{line}"),
                    false => println!("{line}"),
                }
                return Ok(image.id);
            }
            None => {}
        }
    }
    Err(CliError::new("the daemon ended the pull without a result"))
}

/// The pull that `run` and `create` do first, by `--pull`.
pub async fn before_create(client: &Client, c: &CreateArgs) -> Result<()> {
    let Some(image) = c.args.first() else { return Ok(()) };
    let pull_it = match c.pull {
        PullPolicy::Never => false,
        PullPolicy::Always => true,
        PullPolicy::Missing => {
            let req = pb::InspectImageRequest { image: image.clone() };
            match client.images().inspect_image(req).await {
                Ok(_) => false,
                Err(s) if s.code() == tonic::Code::NotFound => {
                    eprintln!("Unable to find image '{image}' locally");
                    true
                }
                Err(s) => return Err(s.into()),
            }
        }
    };
    if pull_it {
        let a = PullArgs { quiet: false, platform: c.platform.clone(), image: image.clone() };
        pull_to(client, a, true).await?;
    }
    Ok(())
}

pub async fn login(client: &Client, a: LoginArgs) -> Result<i32> {
    let server = a.server.unwrap_or_else(|| auth::DOCKER_HUB.to_string());
    let username = match a.username {
        Some(u) => u,
        None => return Err(CliError::new("a user name is required (-u)")),
    };
    let password = match (a.password, a.password_stdin) {
        (Some(_), true) => return Err(CliError::new("--password and --password-stdin are mutually exclusive")),
        (Some(p), false) => p,
        (None, true) => {
            let mut p = String::new();
            std::io::stdin().read_to_string(&mut p)?;
            p.trim_end_matches(['\n', '\r']).to_string()
        }
        (None, false) => return Err(CliError::new("a password is required (-p or --password-stdin)")),
    };
    let req = pb::CheckLoginRequest {
        server: server.clone(),
        auth: Some(pb::RegistryAuth { username: username.clone(), password: password.clone() }),
    };
    client.images().check_login(req).await?;
    auth::store(&server, &username, &password).map_err(|e| CliError::new(format!("save credentials: {e}")))?;
    println!("Login Succeeded");
    Ok(0)
}

pub fn logout(server: Option<String>) -> Result<i32> {
    let server = server.unwrap_or_else(|| auth::DOCKER_HUB.to_string());
    match auth::remove(&server).map_err(|e| CliError::new(format!("save credentials: {e}")))? {
        true => println!("Removing login credentials for {server}"),
        false => println!("Not logged in to {server}"),
    }
    Ok(0)
}

/// Layer progress: bars on a terminal, a line per change of state
/// otherwise (as docker prints to a pipe).
struct Progress {
    quiet: bool,
    bars: Option<MultiProgress>,
    layers: HashMap<String, (ProgressBar, String)>,
}

impl Progress {
    fn new(quiet: bool) -> Progress {
        let bars = (!quiet && std::io::stderr().is_terminal()).then(MultiProgress::new);
        Progress { quiet, bars, layers: HashMap::new() }
    }

    fn layer(&mut self, p: &pb::PullProgress) {
        if self.quiet {
            return;
        }
        let Some(multi) = &self.bars else {
            let last = self.layers.get(&p.id).map(|(_, s)| s.as_str());
            if last != Some(p.status.as_str()) {
                eprintln!("{}: {}", p.id, p.status);
                self.layers.insert(p.id.clone(), (ProgressBar::hidden(), p.status.clone()));
            }
            return;
        };
        let (bar, status) = self.layers.entry(p.id.clone()).or_insert_with(|| {
            let bar = multi.add(ProgressBar::new(p.total));
            if let Ok(style) = ProgressStyle::with_template("{prefix}: {msg:16} [{bar:30}] {bytes}/{total_bytes}") {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_prefix(p.id.clone());
            (bar, String::new())
        });
        bar.set_length(p.total);
        bar.set_position(p.current);
        if *status != p.status {
            bar.set_message(p.status.clone());
            *status = p.status.clone();
        }
    }

    fn line(&self, text: &str) {
        if !self.quiet {
            match &self.bars {
                Some(m) => {
                    let _ = m.println(text);
                }
                None => eprintln!("{text}"),
            }
        }
    }

    fn done(&self) {
        for (bar, _) in self.layers.values() {
            bar.finish();
        }
    }
}
