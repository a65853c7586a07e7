//! A test RTSP server (gst-rtsp-server on its own glib main loop thread) serving "IP cameras":
//! one mount per camera kind, each a live test pattern encoded the way real cameras send it.

use std::sync::mpsc;

use gst::glib;
use gst_rtsp_server::prelude::*;

/// How one test camera encodes and sends its stream.
#[derive(Clone, Debug)]
pub struct IpCamera {
    /// Mount path, e.g. `/back`.
    pub path: &'static str,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    /// x264 profile: `constrained-baseline`, `main` or `high`; B-frames with main and high.
    pub profile: &'static str,
    pub bframes: u32,
    /// Keyframe interval in frames.
    pub gop: u32,
    /// SPS/PPS repeated in the stream (`config-interval=-1`); otherwise only in the SDP.
    pub in_band_parameter_sets: bool,
    /// SPS/PPS in the SDP (`sprop-parameter-sets`); otherwise only in the stream.
    pub sdp_parameter_sets: bool,
    /// An Opus audio track beside the video.
    pub audio: bool,
    /// videotestsrc's pattern: `black` costs the test server almost nothing to encode, so a
    /// loaded machine does not make the "camera" itself drop frames at large sizes.
    pub pattern: &'static str,
    /// The camera's clock jumps (as when it syncs to NTP): after the first duration of
    /// streaming, its timestamps move by the given seconds (forward, or back if negative).
    pub clock_jump: Option<(std::time::Duration, i64)>,
    /// The camera's clock runs this many percent fast (negative: slow): its RTP timestamps
    /// advance that much faster than real time.
    pub clock_drift_percent: i64,
}

impl IpCamera {
    /// A typical cheap camera: Baseline 640x360@15, SPS/PPS in band, a keyframe a second.
    pub fn baseline(path: &'static str) -> IpCamera {
        IpCamera {
            path,
            width: 640,
            height: 360,
            fps: 15,
            profile: "constrained-baseline",
            bframes: 0,
            gop: 15,
            in_band_parameter_sets: true,
            sdp_parameter_sets: true,
            audio: false,
            pattern: "ball",
            clock_jump: None,
            clock_drift_percent: 0,
        }
    }

    fn launch(&self) -> String {
        let IpCamera { width, height, fps, profile, bframes, gop, pattern, .. } = self;
        let config_interval = if self.in_band_parameter_sets { -1 } else { 0 };
        // Without zerolatency x264 may use B-frames; with it, never.
        let tune = if *bframes > 0 { "" } else { "tune=zerolatency" };
        let mut launch = format!(
            "( videotestsrc is-live=true pattern={pattern} ! video/x-raw,width={width},height={height},framerate={fps}/1 \
             ! x264enc {tune} speed-preset=ultrafast bitrate=800 key-int-max={gop} bframes={bframes} b-adapt=false \
             ! video/x-h264,profile={profile} ! h264parse config-interval={config_interval} \
             ! rtph264pay pt=96 config-interval={config_interval}"
        );
        // The SDP describes the caps of the element named pay0: a capssetter that replaces
        // them leaves sprop-parameter-sets out.
        if self.sdp_parameter_sets {
            launch = launch.replace("rtph264pay", "rtph264pay name=pay0");
        } else {
            launch.push_str(
                " ! capssetter name=pay0 replace=true caps=\"application/x-rtp,media=(string)video,clock-rate=(int)90000,\
                 encoding-name=(string)H264,payload=(int)96,packetization-mode=(string)1\"",
            );
        }
        if self.audio {
            launch.push_str(" audiotestsrc is-live=true wave=ticks ! audioconvert ! opusenc ! rtpopuspay name=pay1 pt=97");
        }
        launch.push_str(" )");
        launch
    }
}

/// A running RTSP server; dropping it stops it and disconnects every client.
pub struct RtspServer {
    pub port: u16,
    main_loop: glib::MainLoop,
    server: gst_rtsp_server::RTSPServer,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RtspServer {
    /// Serves `cameras` on a free port; with `digest`, clients must log in as (user, password).
    pub fn start(cameras: &[IpCamera], digest: Option<(&str, &str)>) -> RtspServer {
        RtspServer::start_on(0, cameras, digest)
    }

    /// Serves on `port` (0: any free one), e.g. the port of a server stopped earlier.
    pub fn start_on(port: u16, cameras: &[IpCamera], digest: Option<(&str, &str)>) -> RtspServer {
        gst::init().unwrap();
        let server = gst_rtsp_server::RTSPServer::new();
        server.set_address("127.0.0.1");
        server.set_service(&port.to_string());
        let mounts = server.mount_points().expect("the server has mount points");
        for camera in cameras {
            let factory = gst_rtsp_server::RTSPMediaFactory::new();
            factory.set_launch(&camera.launch());
            factory.set_shared(true);
            if camera.clock_jump.is_some() || camera.clock_drift_percent != 0 {
                let (after, seconds) = camera.clock_jump.unwrap_or((std::time::Duration::MAX, 0));
                let drift = camera.clock_drift_percent;
                factory.connect_media_configure(move |_, media| {
                    let Some(pay) = media.element().downcast_ref::<gst::Bin>().and_then(|b| b.by_name("pay0")) else { return };
                    let Some(pad) = pay.static_pad("src") else { return };
                    // The RTP timestamps in the packets' headers move once `after` has passed;
                    // the buffers' own times (which the server's sinks pace by) do not.
                    // A drift is computed from each packet's own timestamp, so the packets of
                    // one frame keep one timestamp.
                    let since = std::sync::Mutex::new(None::<(std::time::Instant, u32)>);
                    let ticks = (seconds * 90_000) as u32;
                    pad.add_probe(gst::PadProbeType::BUFFER | gst::PadProbeType::BUFFER_LIST, move |_, info| {
                        let shift = |buffer: &mut gst::BufferRef| {
                            if let Ok(mut map) = buffer.map_writable()
                                && map.len() >= 8
                            {
                                let ts = u32::from_be_bytes([map[4], map[5], map[6], map[7]]);
                                let (started, first) = *since.lock().unwrap().get_or_insert((std::time::Instant::now(), ts));
                                let drifted = (i64::from(ts.wrapping_sub(first)) * drift / 100) as u32;
                                let jumped = if started.elapsed() >= after { ticks } else { 0 };
                                map[4..8].copy_from_slice(&ts.wrapping_add(drifted).wrapping_add(jumped).to_be_bytes());
                            }
                        };
                        match &mut info.data {
                            Some(gst::PadProbeData::Buffer(buffer)) => shift(buffer.make_mut()),
                            Some(gst::PadProbeData::BufferList(list)) => list.make_mut().foreach_mut(|mut b, _| {
                                shift(b.make_mut());
                                std::ops::ControlFlow::Continue(Some(b))
                            }),
                            _ => {}
                        }
                        gst::PadProbeReturn::Ok
                    });
                });
            }
            if digest.is_some() {
                let role = gst::Structure::builder("camera-user")
                    .field(gst_rtsp_server::RTSP_PERM_MEDIA_FACTORY_ACCESS.as_str(), true)
                    .field(gst_rtsp_server::RTSP_PERM_MEDIA_FACTORY_CONSTRUCT.as_str(), true)
                    .build();
                factory.add_role_from_structure(&role);
            }
            mounts.add_factory(camera.path, factory);
        }
        if let Some((user, password)) = digest {
            let auth = gst_rtsp_server::RTSPAuth::new();
            auth.set_supported_methods(gst_rtsp_server::gst_rtsp::RTSPAuthMethod::Digest);
            let token =
                gst_rtsp_server::RTSPToken::builder().field(gst_rtsp_server::RTSP_TOKEN_MEDIA_FACTORY_ROLE.as_str(), "camera-user").build();
            auth.add_digest(user, password, &token);
            server.set_auth(Some(&auth));
        }
        let context = glib::MainContext::new();
        let main_loop = glib::MainLoop::new(Some(&context), false);
        let (ready_tx, ready) = mpsc::channel();
        let (srv, ml) = (server.clone(), main_loop.clone());
        let thread = std::thread::spawn(move || {
            context
                .with_thread_default(|| {
                    let attached = srv.attach(Some(&context));
                    let _ = ready_tx.send(attached.is_ok());
                    ml.run();
                    // Closes the listening socket, so the port can be served again.
                    if let Some(source) = attached.ok().and_then(|id| context.find_source_by_id(&id)) {
                        source.destroy();
                    }
                })
                .expect("the context is free");
        });
        assert!(ready.recv().unwrap_or(false), "the RTSP server listens on port {port}");
        let port = u16::try_from(server.bound_port()).expect("a bound port");
        RtspServer { port, main_loop, server, thread: Some(thread) }
    }

    /// The URL of a mount, with credentials if given.
    pub fn url(&self, path: &str, user_info: Option<&str>) -> String {
        match user_info {
            Some(u) => format!("rtsp://{u}@127.0.0.1:{}{path}", self.port),
            None => format!("rtsp://127.0.0.1:{}{path}", self.port),
        }
    }

    /// Stops serving and drops every client, as a camera that loses power.
    pub fn stop(mut self) {
        self.shut_down();
    }

    fn shut_down(&mut self) {
        self.server.client_filter(Some(&mut |_, _| gst_rtsp_server::RTSPFilterResult::Remove));
        self.main_loop.quit();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for RtspServer {
    fn drop(&mut self) {
        self.shut_down();
    }
}
