//! The running RTSP server: gst-rtsp-server on a glib main loop of its own thread, one
//! mount per camera. A camera's mount is a shared media (`appsrc → rtph264pay`): every client
//! of the camera reads the same payloader, fed from the camera's fan-out like any other
//! output, so no client costs an encode or a payload of its own. The appsrc attaches when the
//! first client asks for the stream and detaches when the last one leaves.
//!
//! Each client that plays holds a viewer ticket of its camera (counted, limited and published
//! with the WHEP viewers); a ticket that the camera takes back (a restart, shutdown) closes
//! the client. A client that starts playing asks the encoder for a keyframe (through the
//! fan-out's limiter), so it sees a picture at once.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use gst::glib;
use gst::prelude::*;
use gst_rtsp_server::gst_rtsp::{RTSPLowerTrans, RTSPStatusCode};
use gst_rtsp_server::prelude::*;
use gst_rtsp_server::{RTSPClient, RTSPContext, RTSPMediaFactory, RTSPServer};

use super::gate::{Gate, GateAuth, camera_of, client_key as key};
use crate::media::Media;
use crate::media::webrtc::{ViewerError, ViewerTicket};

/// What every client of a camera shares: the camera's frames, payloaded once. SPS/PPS go
/// before every keyframe (`config-interval=-1`), so a client that joins mid-stream decodes
/// from the first keyframe it gets.
const LAUNCH: &str = "( appsrc name=src ! rtph264pay name=pay0 pt=96 config-interval=-1 aggregate-mode=zero-latency )";

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot serve RTSP on {address} (rtsp.listen): {why}")]
pub struct StartError {
    address: SocketAddr,
    why: String,
}

/// State the server's callbacks share.
struct Shared {
    media: Arc<Media>,
    gate: Arc<Gate>,
    runtime: tokio::runtime::Handle,
    /// The server thread's context: clients are closed there.
    context: glib::MainContext,
    /// The viewer tickets of clients playing, by client and session.
    tickets: Mutex<HashMap<(usize, String), ViewerTicket>>,
    /// Each camera's current payloader, to ask for a keyframe when a client starts playing.
    payloaders: Mutex<HashMap<String, glib::WeakRef<gst::Element>>>,
}

/// A running RTSP server; dropping it disconnects every client and frees the port.
pub struct Server {
    server: RTSPServer,
    main_loop: glib::MainLoop,
    thread: Option<std::thread::JoinHandle<()>>,
    shared: Arc<Shared>,
    mounted: Mutex<BTreeSet<String>>,
    port: u16,
}

impl Server {
    /// Binds `address` and serves until dropped.
    pub fn start(address: SocketAddr, gate: Gate, media: Arc<Media>) -> Result<Server, StartError> {
        let fail = |why: String| StartError { address, why };
        let server = RTSPServer::new();
        server.set_address(&address.ip().to_string());
        server.set_service(&address.port().to_string());
        let gate = Arc::new(gate);
        server.set_auth(Some(&GateAuth::new(gate.clone())));
        let context = glib::MainContext::new();
        let shared = Arc::new(Shared {
            media,
            gate,
            runtime: tokio::runtime::Handle::current(),
            context: context.clone(),
            tickets: Mutex::new(HashMap::new()),
            payloaders: Mutex::new(HashMap::new()),
        });
        let weak = Arc::downgrade(&shared);
        server.connect_client_connected(move |_, client| {
            if let Some(shared) = weak.upgrade() {
                follow_client(&shared, client);
            }
        });
        let main_loop = glib::MainLoop::new(Some(&context), false);
        let (ready_tx, ready) = std::sync::mpsc::channel();
        let (srv, ml) = (server.clone(), main_loop.clone());
        let thread = std::thread::Builder::new()
            .name("rtsp".into())
            .spawn(move || {
                let served = context.with_thread_default(|| {
                    let attached = srv.attach(Some(&context));
                    let _ = ready_tx.send(attached.as_ref().map(|_| ()).map_err(|e| e.to_string()));
                    if attached.is_err() {
                        return;
                    }
                    ml.run();
                    // Closes the listening socket, so the port can be bound again at once.
                    if let Some(source) = attached.ok().and_then(|id| context.find_source_by_id(&id)) {
                        source.destroy();
                    }
                });
                if let Err(e) = served {
                    let _ = ready_tx.send(Err(e.to_string()));
                }
            })
            .map_err(|e| fail(e.to_string()))?;
        match ready.recv() {
            Ok(Ok(())) => {}
            Ok(Err(why)) => {
                let _ = thread.join();
                return Err(fail(why));
            }
            Err(_) => return Err(fail("the server thread ended".into())),
        }
        let port = u16::try_from(server.bound_port()).map_err(|_| fail("no port bound".into()))?;
        Ok(Server { server, main_loop, thread: Some(thread), shared, mounted: Mutex::new(BTreeSet::new()), port })
    }

    /// The port clients connect to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Mounts `/{name}` for each camera and unmounts the others (their clients were closed
    /// by their tickets when the camera stopped).
    pub fn mount(&self, cameras: &[String]) {
        let Some(mounts) = self.server.mount_points() else { return };
        let mut mounted = self.mounted.lock().expect("mounts lock never poisoned");
        let wanted: BTreeSet<String> = cameras.iter().cloned().collect();
        for gone in mounted.difference(&wanted) {
            mounts.remove_factory(&format!("/{gone}"));
        }
        for new in wanted.difference(&mounted) {
            mounts.add_factory(&format!("/{new}"), factory(new, &self.shared));
        }
        *mounted = wanted;
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.server.client_filter(Some(&mut |_, _| gst_rtsp_server::RTSPFilterResult::Remove));
        self.main_loop.quit();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        self.shared.tickets.lock().expect("tickets lock never poisoned").clear();
    }
}

/// The mount of one camera.
fn factory(camera: &str, shared: &Arc<Shared>) -> RTSPMediaFactory {
    let factory = RTSPMediaFactory::new();
    factory.set_launch(LAUNCH);
    factory.set_shared(true);
    // UDP and interleaved TCP; no multicast (a client could aim it anywhere).
    factory.set_protocols(RTSPLowerTrans::UDP | RTSPLowerTrans::TCP);
    let (camera, weak) = (camera.to_owned(), Arc::downgrade(shared));
    factory.connect_media_configure(move |_, media| {
        if let Some(shared) = weak.upgrade() {
            attach(&shared, &camera, media);
        }
    });
    factory
}

/// Feeds a new shared media from the camera's fan-out, from its current GOP when there is
/// one, so the stream's format (and the SDP's `sprop-parameter-sets`) is known at once even
/// for a camera passed through, whose next keyframe may be seconds away.
fn attach(shared: &Shared, camera: &str, media: &gst_rtsp_server::RTSPMedia) {
    let Some(cam) = shared.media.camera(camera) else { return };
    let Some(bin) = media.element().downcast::<gst::Bin>().ok() else { return };
    let (Some(appsrc), Some(pay)) = (bin.by_name("src").and_then(|e| e.downcast::<gst_app::AppSrc>().ok()), bin.by_name("pay0")) else {
        tracing::error!(camera, "RTSP media without its appsrc or payloader");
        return;
    };
    gst_utils::StreamProducer::configure_consumer(&appsrc);
    if let Some(pipeline) = bin.parent().and_then(|p| p.downcast::<gst::Pipeline>().ok()) {
        shared.media.clock().apply(&pipeline);
    }
    let id = cam.fanout.attach_from_gop(&appsrc);
    shared.payloaders.lock().expect("payloaders lock never poisoned").insert(camera.to_owned(), pay.downgrade());
    let fanout = cam.fanout.clone();
    let camera = camera.to_owned();
    media.connect_unprepared(move |_| {
        fanout.detach(id);
        tracing::debug!(camera, "RTSP stream unprepared: the last client left");
    });
    tracing::debug!(camera = %cam.config.name, "RTSP stream prepared");
}

fn session_id(ctx: &RTSPContext) -> String {
    ctx.session().and_then(|s| s.sessionid()).map(|s| s.to_string()).unwrap_or_default()
}

/// Admits a client's PLAY as a viewer, asks for a keyframe once it plays, and lets the
/// ticket go on TEARDOWN or when the connection closes.
fn follow_client(shared: &Arc<Shared>, client: &RTSPClient) {
    let weak = Arc::downgrade(shared);
    client.connect_pre_play_request(move |client, ctx| {
        let Some(shared) = weak.upgrade() else { return RTSPStatusCode::ServiceUnavailable };
        admit(&shared, client, ctx)
    });
    let weak = Arc::downgrade(shared);
    client.connect_play_request(move |_, ctx| {
        let (Some(shared), Some(camera)) = (weak.upgrade(), ctx.uri().and_then(camera_of)) else { return };
        let pay = shared.payloaders.lock().expect("payloaders lock never poisoned").get(&camera).and_then(|w| w.upgrade());
        if let Some(pad) = pay.and_then(|p| p.static_pad("sink")) {
            // Upstream through the appsrc to the fan-out's limiter and the encoder.
            pad.push_event(gst_video::UpstreamForceKeyUnitEvent::builder().all_headers(true).build());
        }
    });
    let weak = Arc::downgrade(shared);
    client.connect_teardown_request(move |client, ctx| {
        if let Some(shared) = weak.upgrade() {
            shared.tickets.lock().expect("tickets lock never poisoned").remove(&(key(client), session_id(ctx)));
        }
    });
    let weak = Arc::downgrade(shared);
    client.connect_closed(move |client| {
        if let Some(shared) = weak.upgrade() {
            let k = key(client);
            shared.tickets.lock().expect("tickets lock never poisoned").retain(|(c, _), _| *c != k);
            shared.gate.forget(k);
        }
    });
}

/// A PLAY: the client becomes one of the camera's viewers, within the camera's limit.
fn admit(shared: &Arc<Shared>, client: &RTSPClient, ctx: &RTSPContext) -> RTSPStatusCode {
    let Some(camera) = ctx.uri().and_then(camera_of) else { return RTSPStatusCode::NotFound };
    let slot = (key(client), session_id(ctx));
    if shared.tickets.lock().expect("tickets lock never poisoned").contains_key(&slot) {
        // PLAY after PAUSE: already counted.
        return RTSPStatusCode::Ok;
    }
    let Some(cam) = shared.media.camera(&camera) else { return RTSPStatusCode::NotFound };
    let mut ticket = match cam.viewers.admit("rtsp") {
        Ok(t) => t,
        Err(e @ ViewerError::TooMany { .. }) => {
            tracing::warn!(camera, "RTSP client refused: {e}");
            return RTSPStatusCode::NotEnoughBandwidth;
        }
        Err(e) => {
            tracing::warn!(camera, "RTSP client refused: {e}");
            return RTSPStatusCode::ServiceUnavailable;
        }
    };
    // When the camera takes its viewers back (restart, removal, shutdown), the client goes.
    let stop = std::mem::replace(&mut ticket.stop, tokio::sync::oneshot::channel().1);
    let client = client.downgrade();
    let context = shared.context.clone();
    shared.runtime.spawn(async move {
        if let Ok(reason) = stop.await {
            tracing::info!(camera, "closing an RTSP client: {reason}");
            context.invoke(move || {
                if let Some(client) = client.upgrade() {
                    client.close();
                }
            });
        }
    });
    tracing::info!(camera = %cam.config.name, "RTSP client playing");
    shared.tickets.lock().expect("tickets lock never poisoned").insert(slot, ticket);
    RTSPStatusCode::Ok
}
