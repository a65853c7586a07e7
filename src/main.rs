//! The `lookout` binary: command line, logging, config loading. Errors end here as anyhow.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use lookout::config::{Config, ConfigError};

#[derive(Parser)]
#[command(version, about = "Lookout camera appliance daemon")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Config file for `run` (the default command); without one the embedded default is used.
    /// Repeat it to list candidates: the first that exists is used (the appliance looks on
    /// the boot partition first, then in /etc).
    #[arg(long, global = true)]
    config: Vec<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the appliance (default).
    Run,
    /// Validate a config file and print every problem with the field it concerns.
    CheckConfig { file: PathBuf },
    /// List V4L2 capture devices with their formats, sizes and rates, and the encoders found.
    Devices,
    /// Read a password from stdin (never the command line) and print its Argon2id hash, for
    /// `[auth] admin_password_hash` on the boot partition.
    HashPassword,
    /// Issue a scoped token on the device (same config and data partition as `run`); prints it.
    Token {
        /// A camera the token may reach; repeat for several. None: every camera.
        #[arg(long = "camera")]
        cameras: Vec<String>,
        /// view, playback, snapshot, control or metrics; repeat for several.
        #[arg(long = "grant", required = true)]
        grants: Vec<String>,
        /// How long it is valid: 30d, 12h, 1y...
        #[arg(long, default_value = "30d")]
        ttl: String,
        /// What it is for, shown in the token list.
        #[arg(long, default_value = "issued on the device")]
        label: String,
    },
    /// Watch a camera over WHEP from this machine for a while and say what arrived: that live
    /// video reaches here (ICE, DTLS, RTP) without a browser. A `?token=` in the URL is sent
    /// as a Bearer token. Fails when no frame arrived.
    Probe {
        /// The WHEP endpoint, e.g. `http://lookout.local/whep/cam?token=lk_…`.
        url: String,
        /// How long to watch.
        #[arg(long, default_value_t = 5)]
        seconds: u64,
    },
    /// As root, before the network starts: set the host name (`lookout-XXXX` from the MAC,
    /// or `[network] hostname`) and the time servers of `[network] ntp`.
    PrepareSystem {
        /// Print what would be set, change nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        // Colour only for a person at a terminal; the journal and log files get plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    let result = match cli.command.unwrap_or(Command::Run) {
        Command::Run => run(cli.config),
        Command::CheckConfig { file } => return check_config(&file),
        Command::Devices => devices(),
        Command::HashPassword => hash_password(),
        Command::Token { cameras, grants, ttl, label } => token(&cli.config, cameras, grants, &ttl, &label),
        Command::PrepareSystem { dry_run } => prepare_system(&cli.config, dry_run),
        Command::Probe { url, seconds } => probe(&url, seconds),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lookout: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn check_config(file: &std::path::Path) -> ExitCode {
    match Config::load(file) {
        Ok(c) => {
            // The owner's certificate files are read now, so a typo shows before a reboot.
            if let lookout::config::Tls::Files { .. } = &c.http.tls
                && let Err(e) = lookout::tls::Identity::load(&c.http.tls, &c.storage.path)
            {
                eprintln!("{}: 1 problem(s)\n  http.tls: {e}", file.display());
                return ExitCode::FAILURE;
            }
            println!("{}: ok ({} camera(s))", file.display(), c.cameras.len());
            ExitCode::SUCCESS
        }
        Err(ConfigError::Invalid { path, problems }) => {
            eprintln!("{}: {} problem(s)", path.display(), problems.len());
            for p in problems {
                eprintln!("  {p}");
            }
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn hash_password() -> anyhow::Result<()> {
    let mut password = String::new();
    std::io::stdin().read_line(&mut password).context("reading the password from stdin")?;
    let password = password.trim_end_matches(['\n', '\r']);
    lookout::auth::password::check_new(password).map_err(anyhow::Error::msg)?;
    println!("{}", lookout::auth::password::hash(password).map_err(anyhow::Error::msg)?);
    Ok(())
}

fn token(candidates: &[PathBuf], cameras: Vec<String>, grants: Vec<String>, ttl: &str, label: &str) -> anyhow::Result<()> {
    let config = load(candidates)?;
    let grants = grants
        .iter()
        .map(|g| {
            lookout::auth::Grant::from_name(g)
                .with_context(|| format!("no grant `{g}`; grants: view, playback, snapshot, control, metrics"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    if let Some(unknown) = cameras.iter().find(|c| config.camera(c).is_none()) {
        anyhow::bail!("no camera named `{unknown}` in the config");
    }
    let ttl = humantime_serde::re::humantime::parse_duration(ttl)
        .with_context(|| format!("--ttl must be a duration such as 30d, not `{ttl}`"))?;
    let lifetimes = lookout::auth::Lifetimes { idle: config.auth.session_idle, absolute: config.auth.session_max };
    let auth = lookout::auth::Auth::open(&config.storage.path, None, lifetimes, lookout::events::Bus::default());
    let cameras = (!cameras.is_empty()).then_some(cameras);
    let issued = auth.issue_token("lookout token", label, cameras, grants, ttl)?;
    println!("{}", issued.token);
    Ok(())
}

fn prepare_system(candidates: &[PathBuf], dry_run: bool) -> anyhow::Result<()> {
    let config = lookout::with_saved_settings(load(candidates)?);
    let plan = lookout::network::system::plan(&config.network, std::path::Path::new("/sys"));
    println!("hostname: {}", plan.hostname);
    println!("time servers: {}", if config.network.ntp.is_empty() { "the system's".into() } else { config.network.ntp.join(" ") });
    if !dry_run {
        lookout::network::system::apply(&plan, std::path::Path::new("/run"))?;
    }
    Ok(())
}

fn devices() -> anyhow::Result<()> {
    lookout::media::init()?;
    print!("{}", lookout::media::devices::describe(&lookout::media::probe::Machine::probe()));
    Ok(())
}

fn probe(url: &str, seconds: u64) -> anyhow::Result<()> {
    use lookout::media::webrtc::probe::Probe;
    lookout::media::init()?;
    let (endpoint, token) = match url.split_once("?token=") {
        Some((endpoint, token)) => (endpoint, Some(token)),
        None => (url, None),
    };
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async {
        let client = reqwest::Client::builder().timeout(std::time::Duration::from_secs(15)).build()?;
        let (probe, offer) = Probe::offer().await?;
        let mut request = client.post(endpoint).header("content-type", "application/sdp").body(offer);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.map_err(|e| anyhow::anyhow!("cannot reach {endpoint}: {}", e.without_url()))?;
        let status = response.status();
        let session = response.headers().get("location").and_then(|l| l.to_str().ok()).and_then(|l| response.url().join(l).ok());
        let answer = response.text().await?;
        if status.as_u16() != 201 {
            anyhow::bail!("{endpoint} answered {status}: {}", answer.lines().next().unwrap_or(""));
        }
        probe.accept(&answer).await?;
        tokio::time::sleep(std::time::Duration::from_secs(seconds)).await;
        let (frames, connection) = (probe.frames(), probe.connection());
        if let Some(session) = session {
            let mut delete = client.delete(session);
            if let Some(token) = token {
                delete = delete.bearer_auth(token);
            }
            let _ = delete.send().await;
        }
        println!("{}", serde_json::json!({ "frames": frames, "seconds": seconds, "connection": connection }));
        anyhow::ensure!(frames > 0, "no video arrived in {seconds} s (connection {connection})");
        Ok(())
    })
}

fn run(candidates: Vec<PathBuf>) -> anyhow::Result<()> {
    // x264 asks for transparent huge pages for its frame buffers, which fills 2 MiB pages
    // it only partly uses: ~7 MB of resident memory on a device where memory is the budget.
    if let Err(e) = nix::sys::prctl::set_thp_disable(true) {
        tracing::debug!("cannot turn off transparent huge pages: {e}");
    }
    let config = load(&candidates)?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let served = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(config.http.listen)
            .await
            .with_context(|| format!("cannot listen on {} (http.listen)", config.http.listen))?;
        lookout::serve(config, listener, shutdown_signal()).await?;
        Ok(())
    });
    // A camera blocked in its driver or a FIFO leaves a blocking thread behind (serve logged
    // it); dropping the runtime would wait for that thread for ever.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    served
}

/// The first config of `candidates` that exists, or the embedded default without any.
fn load(candidates: &[PathBuf]) -> anyhow::Result<Config> {
    let chosen = match candidates.iter().find(|p| p.exists()) {
        Some(path) => Some(path),
        // None exists: load the last one to report it missing, by name.
        None => candidates.last(),
    };
    Ok(match chosen {
        Some(path) => {
            tracing::info!("config: {}", path.display());
            Config::load(path)?
        }
        None => {
            tracing::info!("no --config given: running the embedded default (data in ./data, port 8080)");
            Config::embedded_default()
        }
    })
}

/// Resolves on SIGTERM (systemd stop) or SIGINT (Ctrl-C).
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
