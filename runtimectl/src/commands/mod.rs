//! One function per command; each returns the process exit code.

mod container;
mod direct;
mod image;
mod network;
mod pull;
mod stdio;
mod system;
mod terminal;

use crate::cli::{Cli, Command, ImageCommand, NetworkCommand, NodeCommand, SystemCommand};
use crate::client::Client;
use crate::error::Result;

pub async fn dispatch(cli: Cli) -> Result<i32> {
    let client = Client::connect(&cli.host).await?;
    match cli.command {
        Command::Run(a) => stdio::run(&client, a).await,
        Command::Create(a) => container::create(&client, a).await,
        Command::Start(a) => stdio::start(&client, a).await,
        Command::Attach(a) => stdio::attach(&client, a).await,
        Command::Ps(a) => container::ps(&client, a).await,
        Command::Stop { time, containers } => container::stop(&client, time, containers).await,
        Command::Kill { signal, containers } => container::kill(&client, signal, containers).await,
        Command::Rm { force, containers } => container::rm(&client, force, containers).await,
        Command::Logs(a) => container::logs(&client, a).await,
        Command::Exec(a) => stdio::exec(&client, a).await,
        Command::Inspect { containers } => container::inspect(&client, containers).await,
        Command::Wait { containers } => container::wait(&client, containers).await,
        Command::Events(f) => system::events(&client, f.format).await,
        Command::Image(ImageCommand::Import { name, file }) => image::import(&client, name, file).await,
        Command::Image(ImageCommand::Ls(f)) | Command::Images(f) => image::ls(&client, f.format).await,
        Command::Image(ImageCommand::Rm { force, images }) | Command::Rmi { force, images } => {
            image::rm(&client, force, images).await
        }
        Command::Image(ImageCommand::Pull(a)) | Command::Pull(a) => pull::pull(&client, a).await.map(|_| 0),
        Command::Login(a) => pull::login(&client, a).await,
        Command::Image(ImageCommand::Tag { source, target }) | Command::Tag { source, target } => {
            image::tag(&client, source, target).await
        }
        Command::Image(ImageCommand::Inspect { images }) => image::inspect(&client, images).await,
        Command::Image(ImageCommand::Save(a)) | Command::Save(a) => image::save(&client, a).await,
        Command::Image(ImageCommand::Load(a)) | Command::Load(a) => image::load(&client, a).await,
        Command::Image(ImageCommand::History { image }) | Command::History { image } => {
            image::history(&client, image).await
        }
        Command::Image(ImageCommand::Prune { all, force }) => image::prune(&client, all, force).await,
        Command::Logout { server } => pull::logout(server),
        Command::Version(f) => system::version(&client, f.format).await,
        Command::Info(f) => system::info(&client, f.format).await,
        Command::System(SystemCommand::Df(f)) => system::df(&client, f.format).await,
        Command::Node(NodeCommand::Ls(f)) => system::nodes(&client, f.format).await,
        Command::Port { container } => container::port(&client, container).await,
        Command::Network(NetworkCommand::Create { driver, subnet, gateway, internal, opt, name }) => {
            network::create(&client, name, driver, subnet, gateway, internal, opt).await
        }
        Command::Network(NetworkCommand::Ls(f)) => network::ls(&client, f.format).await,
        Command::Network(NetworkCommand::Inspect { networks }) => network::inspect(&client, networks).await,
        Command::Network(NetworkCommand::Rm { networks }) => network::rm(&client, networks).await,
        Command::Network(NetworkCommand::Connect { ip, aliases, network, container }) => {
            network::connect(&client, network, container, ip, aliases).await
        }
        Command::Network(NetworkCommand::Disconnect { network, container }) => {
            network::disconnect(&client, network, container).await
        }
    }
}

/// `inspect` of each name: the JSON of those found, as one array; an error
/// line for each not found, and exit code 1 if any was not.
async fn inspect_each<F, Fut>(names: Vec<String>, mut fetch: F) -> Result<i32>
where
    F: FnMut(String) -> Fut,
    Fut: std::future::Future<Output = std::result::Result<Option<serde_json::Value>, tonic::Status>>,
{
    let mut found = Vec::new();
    let mut code = 0;
    for name in names {
        match fetch(name).await {
            Ok(json) => found.extend(json),
            Err(status) => {
                eprintln!("runtimectl: {}", status.message());
                code = 1;
            }
        }
    }
    println!("{}", serde_json::to_string_pretty(&serde_json::Value::Array(found)).unwrap_or_default());
    Ok(code)
}

/// Runs `op` on each name like docker's multi-target commands: errors are
/// printed and the exit code is 1 if any failed; a lone target's error keeps
/// its own exit code.
async fn for_each<F, Fut>(names: Vec<String>, mut op: F) -> Result<i32>
where
    F: FnMut(String) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let single = names.len() == 1;
    let mut code = 0;
    for name in names {
        if let Err(e) = op(name).await {
            if single {
                return Err(e);
            }
            eprintln!("runtimectl: {}", e.message);
            code = 1;
        }
    }
    Ok(code)
}
