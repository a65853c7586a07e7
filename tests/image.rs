//! The firmware image, booted: QEMU's `virt` machine (TCG, Cortex-A72) runs the card image
//! made by `scripts/build-image`, with the kernel's `vivid` driver as the camera. From the host,
//! through QEMU's port forwarding: the page answers, the camera is online on the vivid device,
//! a WebRTC viewer gets frames, a segment is recorded on the data partition (grown to fill
//! the disk), the reboot action reboots the device, the segment survives, and the root
//! partition was never written to.
//!
//! Needs `LOOKOUT_IMAGE_DIR` (the output of `scripts/build-image`) and `LOOKOUT_QEMU` (a
//! `qemu-system-aarch64`); `scripts/test` sets both. Without them the test fails; with
//! `LOOKOUT_SKIP_IMAGE=1`, `scripts/test` leaves it out by name and says so at the end.

mod common;

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use common::whep::WhepViewer;

const IMAGE: &str = "lookout-rpi4-arm64.img";
/// Debian's kernel with the root on the card's second partition (PARTUUID from genimage.cfg).
const KERNEL_ARGS: &str = "root=PARTUUID=4c4f4f4b-02 ro rootwait console=ttyAMA0 \
    systemd.journald.forward_to_console=1 modules-load=vivid vivid.n_devs=1 vivid.node_types=0x1 vivid.num_inputs=1 vivid.input_types=0x0";

struct Partition {
    start: u64,
    size: u64,
}

/// The card's partitions, in bytes, from `sfdisk --json`.
fn partitions(image: &Path) -> Vec<Partition> {
    let out = Command::new("sfdisk").arg("--json").arg(image).output().expect("sfdisk (fdisk package)");
    let table: Value = serde_json::from_slice(&out.stdout).expect("sfdisk --json");
    table["partitiontable"]["partitions"]
        .as_array()
        .expect("partitions")
        .iter()
        .map(|p| Partition { start: p["start"].as_u64().unwrap() * 512, size: p["size"].as_u64().unwrap() * 512 })
        .collect()
}

/// Whether two partitions hold the same bytes, compared a chunk at a time.
fn same_bytes(a: &Path, pa: &Partition, b: &Path, pb: &Partition) -> bool {
    if pa.size != pb.size {
        return false;
    }
    let open = |path: &Path, p: &Partition| {
        let mut f = std::fs::File::open(path).unwrap();
        f.seek(SeekFrom::Start(p.start)).unwrap();
        f
    };
    let (mut fa, mut fb) = (open(a, pa), open(b, pb));
    let (mut ba, mut bb) = (vec![0u8; 4 << 20], vec![0u8; 4 << 20]);
    let mut left = pa.size;
    while left > 0 {
        let n = left.min(ba.len() as u64) as usize;
        fa.read_exact(&mut ba[..n]).unwrap();
        fb.read_exact(&mut bb[..n]).unwrap();
        if ba[..n] != bb[..n] {
            return false;
        }
        left -= n as u64;
    }
    true
}

/// Copies `len` bytes of `from` (from where it stands) to the new file `to`, leaving the
/// runs of zeros as holes. An image is mostly empty space, and CI machines' disks can be
/// small: a plain copy of the card and of its grown data partition wrote gigabytes of zeros.
fn copy_sparse(mut from: impl Read, len: u64, to: &Path) {
    use std::io::Write;
    let mut out = std::fs::File::create(to).unwrap_or_else(|e| panic!("creating {}: {e}", to.display()));
    let mut block = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        let n = left.min(block.len() as u64) as usize;
        from.read_exact(&mut block[..n]).unwrap_or_else(|e| panic!("reading for {}: {e}", to.display()));
        if block[..n].iter().all(|&b| b == 0) {
            out.seek(SeekFrom::Current(n as i64)).unwrap();
        } else {
            out.write_all(&block[..n]).unwrap_or_else(|e| panic!("writing {}: {e}", to.display()));
        }
        left -= n as u64;
    }
    out.set_len(len).unwrap();
}

/// A copy of the built image to boot (the built one stays as it was, for comparing).
fn copy_image(images: &Path, to: &Path) {
    let image = images.join(IMAGE);
    let file = std::fs::File::open(&image).unwrap_or_else(|e| panic!("the image {} (scripts/build-image): {e}", image.display()));
    let len = file.metadata().unwrap().len();
    copy_sparse(file, len, to);
}

fn free_port(udp: bool) -> u16 {
    if udp {
        std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
    } else {
        std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
    }
}

/// The host's ends of QEMU's port forwards: HTTP (80), HTTPS (443), WebRTC's one UDP port.
#[derive(Clone, Copy)]
struct Ports {
    http: u16,
    https: u16,
    udp: u16,
    /// Forwarded to the device's RTSP port, 8554.
    rtsp: u16,
}

/// One power-on of the emulated device; dropping it pulls the power.
struct Device {
    qemu: Child,
    console: PathBuf,
}

impl Device {
    fn boot(images: &Path, disk: &Path, console: PathBuf, ports: Ports) -> Device {
        Device::boot_with(images, disk, console, Some(ports), "", None)
    }

    /// A power-on with QEMU's user network and its port forwards (`ports`) or no network
    /// card at all, `kernel_args` added to [`KERNEL_ARGS`], and a second disk if given.
    fn boot_with(
        images: &Path,
        disk: &Path,
        console: PathBuf,
        ports: Option<Ports>,
        kernel_args: &str,
        extra_disk: Option<&Path>,
    ) -> Device {
        let qemu = std::env::var("LOOKOUT_QEMU").unwrap_or_else(|_| "qemu-system-aarch64".into());
        let data_dir = Path::new(&qemu).parent().and_then(Path::parent).map(|usr| usr.join("share/qemu"));
        let mut cmd = Command::new(&qemu);
        if let Some(dir) = data_dir.filter(|d| d.exists()) {
            cmd.arg("-L").arg(dir);
        }
        cmd.args(["-M", "virt", "-cpu", "cortex-a72", "-smp", "2", "-m", "1024", "-display", "none", "-monitor", "none", "-no-reboot"])
            .arg("-kernel")
            .arg(images.join("boot-debian/vmlinuz"))
            .arg("-initrd")
            .arg(images.join("boot-debian/initrd.img"))
            .args(["-append", &format!("{KERNEL_ARGS} {kernel_args}")])
            .arg("-drive")
            .arg(format!("if=none,id=card,format=raw,file={}", disk.display()))
            .args(["-device", "virtio-blk-pci,drive=card"]);
        if let Some(extra) = extra_disk {
            cmd.arg("-drive").arg(format!("if=none,id=extra,format=raw,readonly=on,file={}", extra.display()));
            cmd.args(["-device", "virtio-blk-pci,drive=extra"]);
        }
        match ports {
            Some(Ports { http, https, udp, rtsp }) => {
                cmd.arg("-netdev")
                    .arg(format!(
                        "user,id=net0,hostfwd=tcp:127.0.0.1:{http}-:80,hostfwd=tcp:127.0.0.1:{https}-:443,hostfwd=udp:127.0.0.1:{udp}-:{udp},\
                         hostfwd=tcp:127.0.0.1:{rtsp}-:8554"
                    ))
                    .args(["-device", "virtio-net-pci,netdev=net0,romfile="]);
            }
            None => {
                cmd.args(["-nic", "none"]);
            }
        }
        cmd.arg("-serial").arg(format!("file:{}", console.display())).stdin(Stdio::null());
        let qemu = cmd.spawn().expect("qemu-system-aarch64 runs");
        Device { qemu, console }
    }

    fn console_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.console).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(60)..].join("\n")
    }

    /// Waits for QEMU to exit by itself (the guest rebooted: `-no-reboot`).
    fn wait_exit(&mut self, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if let Ok(Some(_)) = self.qemu.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        false
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        let _ = self.qemu.kill();
        let _ = self.qemu.wait();
    }
}

async fn get_json(client: &reqwest::Client, base: &str, path: &str) -> Option<Value> {
    client.get(format!("{base}{path}")).timeout(Duration::from_secs(10)).send().await.ok()?.json().await.ok()
}

/// Polls `path` until `pred` holds; panics with the console's tail after `timeout`.
async fn wait_for(
    device: &Device,
    client: &reqwest::Client,
    base: &str,
    path: &str,
    timeout: Duration,
    what: &str,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    let end = Instant::now() + timeout;
    let mut last = None;
    while Instant::now() < end {
        if let Some(v) = get_json(client, base, path).await {
            if pred(&v) {
                return v;
            }
            last = Some(v);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    panic!("{what}: not within {timeout:?}; last {path}: {last:?}\nconsole:\n{}", device.console_tail());
}

/// The certificate the device presents on `port`, read by a real TLS client (`openssl
/// s_client`) the first time it connects, once HTTPS answers: what a user accepts in the
/// browser, and what the rest of the test pins.
async fn device_certificate(device: &Device, port: u16) -> String {
    let end = Instant::now() + Duration::from_secs(300);
    loop {
        let out = Command::new("openssl")
            .args(["s_client", "-connect", &format!("127.0.0.1:{port}"), "-servername", "lookout.local"])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .expect("openssl (scripts/setup --test installs it)");
        let text = String::from_utf8_lossy(&out.stdout);
        if let (Some(a), Some(b)) = (text.find("-----BEGIN CERTIFICATE-----"), text.find("-----END CERTIFICATE-----")) {
            return format!("{}-----END CERTIFICATE-----\n", &text[a..b]);
        }
        assert!(Instant::now() < end, "no HTTPS within 300 s\nconsole:\n{}", device.console_tail());
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// Logs in as the owner with the password whose hash was flashed, once the device answers,
/// over HTTPS pinning `pem`.
async fn log_in(device: &Device, base: &str, pem: &str) -> reqwest::Client {
    let end = Instant::now() + Duration::from_secs(300);
    loop {
        match common::login_via(|| common::pinned_builder(pem.as_bytes()), base, "admin", common::OWNER_PASSWORD).await {
            Ok(client) => return client,
            Err(status) if Instant::now() < end => {
                assert!(
                    status == 0 || status >= 500,
                    "the flashed owner password was refused ({status})\nconsole:\n{}",
                    device.console_tail()
                );
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(status) => panic!("no login within 300 s (last status {status})\nconsole:\n{}", device.console_tail()),
        }
    }
}

/// Joins as a WHEP viewer the way the page does: a 503 (the device still starting WebRTC,
/// with Retry-After) is retried; anything else, or no session within a generous deadline,
/// fails with the device's console (its journal) to show why.
async fn join(device: &Device, endpoint: &str, client: &reqwest::Client) -> WhepViewer {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        match WhepViewer::connect_with(endpoint, client.clone()).await {
            Ok(viewer) => return viewer,
            Err(refused) if refused.status == 503 && Instant::now() < deadline => {
                eprintln!("WHEP join refused for now, retrying: {}", refused.body);
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            Err(refused) => panic!("WHEP session not created: {refused:?}\nconsole:\n{}", device.console_tail()),
        }
    }
}

fn finished_segments(listing: &Value) -> Vec<String> {
    listing["segments"]
        .as_array()
        .map(|s| s.iter().filter(|s| s["recording"] == false).filter_map(|s| s["name"].as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_image_boots_into_a_working_appliance_and_keeps_its_recordings_across_a_reboot() {
    // No quiet pass without an image: scripts/test builds it, or leaves this test out by name
    // (LOOKOUT_SKIP_IMAGE=1) and says so in its summary.
    let images = PathBuf::from(std::env::var_os("LOOKOUT_IMAGE_DIR").expect(
        "LOOKOUT_IMAGE_DIR is unset: run scripts/test (which builds the image), or LOOKOUT_SKIP_IMAGE=1 scripts/test to leave this test out",
    ));
    let work = tempfile::tempdir().unwrap();
    let disk = work.path().join("card.img");
    copy_image(&images, &disk);
    let original = partitions(&images.join(IMAGE));
    assert_eq!(original.len(), 3, "boot, root, data");
    // A bigger card than the image: the data partition must grow into it on first boot.
    let card_size = std::fs::metadata(&disk).unwrap().len() + 1024 * 1024 * 1024;
    std::fs::OpenOptions::new().write(true).open(&disk).unwrap().set_len(card_size).unwrap();

    // The owner's config, dropped on the boot partition: the vivid camera at 640x360@30 (its
    // default mode is 3840x2160 at 2 fps), WebRTC reachable through QEMU's port forwarding.
    let ports = Ports { http: free_port(false), https: free_port(false), udp: free_port(true), rtsp: free_port(false) };
    let udp = ports.udp;
    let config = work.path().join("lookout.toml");
    std::fs::write(
        &config,
        format!(
            "[http]\nlisten = \"0.0.0.0:80\"\ntls = \"self-signed\"\nhttps_listen = \"0.0.0.0:443\"\n[auth]\nadmin_password_hash = \"{hash}\"\n[storage]\npath = \"/data\"\n\
             [webrtc]\nudp_ports = \"{udp}-{udp}\"\nannounce = [\"127.0.0.1\"]\n\
             [[camera]]\nname = \"cam\"\nsource = \"auto\"\nwidth = 640\nheight = 360\nfps = 30\nbitrate_kbps = 600\n\
             [camera.recording]\nsegment = \"10s\"\n",
            hash = common::owner_password_hash(),
        ),
    )
    .unwrap();
    put_on_boot_partition(&disk, &original[0], &config, "lookout.toml");

    let base = format!("https://127.0.0.1:{}", ports.https);
    let plain = format!("http://127.0.0.1:{}", ports.http);
    let booted = Instant::now();
    let mut device = Device::boot(&images, &disk, work.path().join("console-1.log"), ports);

    // HTTPS with the certificate the device made on its first boot; plain HTTP only redirects.
    let pem = device_certificate(&device, ports.https).await;
    let pinned = common::pinned_builder(pem.as_bytes()).build().unwrap();
    // The owner's password was flashed as a hash on the boot partition: no setup step, and
    // nothing answers a stranger.
    let owner = log_in(&device, &base, &pem).await;
    let anonymous = pinned.get(format!("{base}/api/state")).send().await.unwrap();
    assert_eq!(anonymous.status(), 401, "the device is closed to strangers");
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let redirected = http.get(format!("{plain}/api/state")).send().await.unwrap();
    assert_eq!(redirected.status(), 307, "plain HTTP sends the page to HTTPS");
    assert_eq!(redirected.headers()["location"], "https://127.0.0.1/api/state");
    let state =
        wait_for(&device, &owner, &base, "/api/state", Duration::from_secs(300), "camera online", |s| s["cameras"][0]["online"] == true)
            .await;
    let boot_to_online = booted.elapsed();
    let cam = &state["cameras"][0];
    assert!(cam["source"].as_str().unwrap_or("").contains("/dev/video"), "the vivid V4L2 camera: {cam}");
    assert_eq!((cam["width"].as_u64(), cam["height"].as_u64()), (Some(640), Some(360)), "{cam}");

    let page = owner.get(format!("{base}/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("Lookout"));

    let issued = common::issue_token_over_http(&owner, &base, serde_json::json!({ "grants": ["view"], "ttl": "1h" })).await;
    let token = issued["token"].as_str().unwrap();
    let viewer = join(&device, &common::with_token(&format!("{base}/whep/cam"), token), &pinned).await;
    let console = std::fs::read_to_string(&device.console).unwrap_or_default();
    if let Some(line) = console.lines().find(|l| l.contains("WebRTC ready")) {
        eprintln!("first boot: {line}");
    }
    assert!(
        viewer.wait_frames(15, Duration::from_secs(60)).await,
        "viewer got {} frames\nconsole:\n{}",
        viewer.frames(),
        device.console_tail()
    );
    let first_frame = booted.elapsed();
    eprintln!("boot to camera online {:.1} s, to first WebRTC frame {:.1} s", boot_to_online.as_secs_f64(), first_frame.as_secs_f64());
    viewer.delete().await;

    // The V4L2 camera over RTSP, as an NVR reads it: ffmpeg over interleaved TCP, with the
    // owner's password (Digest: the owner has logged in, so the device knows it).
    let rtsp = format!("rtsp://admin:{}@127.0.0.1:{}/cam", common::OWNER_PASSWORD.replace(' ', "%20"), ports.rtsp);
    let read = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-rtsp_transport", "tcp", "-timeout", "30000000", "-i", &rtsp, "-t", "3", "-f", "null", "-"])
        .output()
        .expect("ffmpeg runs");
    let log = String::from_utf8_lossy(&read.stderr);
    let frames: u64 = log.rsplit("frame=").next().and_then(|r| r.split_whitespace().next()).and_then(|n| n.parse().ok()).unwrap_or(0);
    assert!(log.contains("frame=") && frames >= 15, "RTSP from the device: {frames} frames\n{log}\nconsole:\n{}", device.console_tail());

    let listing = wait_for(&device, &owner, &base, "/api/cameras/cam/recordings", Duration::from_secs(90), "a finished segment", |l| {
        !finished_segments(l).is_empty()
    })
    .await;
    let kept = finished_segments(&listing)[0].clone();
    let health = get_json(&owner, &base, "/api/health").await.expect("health");
    let data_total = health["health"]["disk_total_bytes"].as_u64().unwrap_or(0);
    assert!(data_total > 900 * 1024 * 1024, "the data partition grew into the card: {data_total} bytes");
    // The emulated board's network card: wired, up, with the address DHCP gave it.
    let wired = health["health"]["network"].as_array().and_then(|links| links.iter().find(|l| l["kind"] == "wired").cloned());
    assert!(
        wired.as_ref().is_some_and(|l| l["up"] == true && l["addresses"].as_array().is_some_and(|a| !a.is_empty())),
        "a wired link with an address in /api/health: {health}"
    );

    // The reboot action: the daemon asks systemd (lookout-reboot.path); QEMU exits at reboot.
    let status = owner.post(format!("{base}/api/actions/reboot")).send().await.unwrap().status();
    assert_eq!(status, 202);
    assert!(device.wait_exit(Duration::from_secs(120)), "the device rebooted\nconsole:\n{}", device.console_tail());
    drop(device);

    let device = Device::boot(&images, &disk, work.path().join("console-2.log"), ports);
    // The certificate (or a renewal naming an address DHCP gave later, with the same key and
    // subject) is kept on the data partition: what a client pinned on the first boot still holds.
    device_certificate(&device, ports.https).await;
    let again = pinned.get(format!("{base}/livez")).send().await;
    assert!(again.is_ok_and(|r| r.status() == 200), "the first boot's pinned certificate still verifies after a reboot");
    // The session cookie outlives the reboot: its secret is on the data partition.
    let listing =
        wait_for(&device, &owner, &base, "/api/cameras/cam/recordings", Duration::from_secs(300), "the segment after reboot", |l| {
            finished_segments(l).contains(&kept)
        })
        .await;
    assert!(!finished_segments(&listing).is_empty());
    wait_for(&device, &owner, &base, "/api/state", Duration::from_secs(120), "camera online again", |s| s["cameras"][0]["online"] == true)
        .await;
    drop(device); // pulled power

    let after = partitions(&disk);
    assert_eq!(after[1].start, original[1].start);
    assert!(
        same_bytes(&disk, &after[1], &images.join(IMAGE), &original[1]),
        "the root partition is byte-for-byte unchanged after two boots: it is mounted read-only"
    );
    assert!(after[2].size > original[2].size, "partition table shows the data partition grown");

    // The clock is kept on the data partition across boots (a Pi has no clock battery).
    let data = work.path().join("data.ext4");
    {
        let mut card = std::fs::File::open(&disk).unwrap();
        card.seek(SeekFrom::Start(after[2].start)).unwrap();
        copy_sparse(card, after[2].size, &data);
    }
    // The device was switched off, not shut down: replay the copy's journal first, as the
    // next boot's mount would (debugfs reads only what is already in place).
    let fsck = Command::new("e2fsck").args(["-fy"]).arg(&data).output().expect("e2fsck (e2fsprogs)");
    assert!(fsck.status.code().is_some_and(|c| c <= 2), "e2fsck: {}", String::from_utf8_lossy(&fsck.stdout));
    let listed = Command::new("debugfs").args(["-R", "ls -l /.system/timesync"]).arg(&data).output().expect("debugfs (e2fsprogs)");
    assert!(
        String::from_utf8_lossy(&listed.stdout).contains(" clock"),
        "timesyncd's clock file is on the data partition: {}{}",
        String::from_utf8_lossy(&listed.stdout),
        String::from_utf8_lossy(&listed.stderr)
    );
}

/// Writes `file` to the boot partition of `disk` as `name` (what a PC does to the LOOKOUT
/// drive).
fn put_on_boot_partition(disk: &Path, boot: &Partition, file: &Path, name: &str) {
    let status = Command::new("mcopy")
        .arg("-o")
        .arg("-i")
        .arg(format!("{}@@{}", disk.display(), boot.start))
        .arg(file)
        .arg(format!("::{name}"))
        .status()
        .expect("mcopy (mtools)");
    assert!(status.success());
}

/// The Wi-Fi side's disk: a FAT image with `tests/fixtures/wifi` and an arm64 busybox.
fn fixture_disk(work: &Path) -> PathBuf {
    let busybox = PathBuf::from(std::env::var_os("LOOKOUT_IMAGE_FIXTURES").expect(
        "LOOKOUT_IMAGE_FIXTURES is unset: run scripts/test (which extracts the arm64 busybox of the Wi-Fi side into the image cache)",
    ))
    .join("bin/busybox");
    let password = work.join("password");
    std::fs::write(&password, common::OWNER_PASSWORD).unwrap();
    let disk = work.join("fixture.img");
    let made = Command::new("mkfs.vfat").arg("-C").arg(&disk).arg("8192").stdout(Stdio::null()).status().expect("mkfs.vfat (dosfstools)");
    assert!(made.success());
    let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/wifi");
    for file in [busybox, here.join("side.sh"), here.join("udhcpc.sh"), password] {
        let status = Command::new("mcopy").arg("-i").arg(&disk).arg(&file).arg("::").status().expect("mcopy (mtools)");
        assert!(status.success(), "copying {}", file.display());
    }
    disk
}

/// The steps the Wi-Fi side reports, in order (`tests/fixtures/wifi/side.sh`).
const WIFI_STEPS: &[&str] = &[
    "ap",
    "hotspot-seen",
    "phone-joined",
    "captive-dns",
    "captive-http",
    "setup-password",
    "setup-scan",
    "setup-join",
    "joined",
    "page-over-wifi",
    "mdns",
    "dnssd",
    "whep-over-wifi",
    "rtsp-over-wifi",
    "rejoin",
    "boot-config",
];

#[test]
fn the_image_on_wifi_opens_its_setup_hotspot_is_set_up_from_a_phone_and_rejoins_its_network() {
    let images = PathBuf::from(std::env::var_os("LOOKOUT_IMAGE_DIR").expect(
        "LOOKOUT_IMAGE_DIR is unset: run scripts/test (which builds the image), or LOOKOUT_SKIP_IMAGE=1 scripts/test to leave this test out",
    ));
    let work = tempfile::tempdir().unwrap();
    let disk = work.path().join("card.img");
    copy_image(&images, &disk);
    let boot = partitions(&disk).remove(0);
    // A card flashed with no network and no owner password, and no cable: only the radio.
    // The hotspot opens 5 s after start-up instead of 30, to keep the test short; plain HTTP,
    // as busybox on the phone side speaks no TLS.
    let config = work.path().join("lookout.toml");
    std::fs::write(
        &config,
        "[http]\nlisten = \"0.0.0.0:80\"\ntls = \"off\"\n[storage]\npath = \"/data\"\n[network.hotspot]\nafter = \"5s\"\n\
         [[camera]]\nname = \"cam\"\nsource = \"auto\"\nwidth = 640\nheight = 360\nfps = 15\nbitrate_kbps = 400\n",
    )
    .unwrap();
    put_on_boot_partition(&disk, &boot, &config, "lookout.toml");
    let fixture = fixture_disk(work.path());
    // Three virtual radios; the Wi-Fi side runs as a transient unit once the system is up.
    // The command line's unit is a oneshot that boot waits for, and with it systemd boots into
    // kernel-command-line.target: it starts the side as a service of its own and the
    // appliance's usual target, and returns.
    let side = "modules-load=mac80211_hwsim mac80211_hwsim.radios=3 \
         systemd.run=\"/bin/sh -c 'mkdir -p /run/fixture && mount -o ro /dev/vdb /run/fixture && \
         systemd-run --no-block --unit=wifi-side /bin/sh /run/fixture/side.sh && systemctl --no-block start multi-user.target'\" \
         systemd.run_success_action=none systemd.run_failure_action=none";
    let device = Device::boot_with(&images, &disk, work.path().join("console.log"), None, side, Some(&fixture));
    let end = Instant::now() + Duration::from_secs(900);
    let steps = loop {
        let text = std::fs::read_to_string(&device.console).unwrap_or_default();
        let steps: Vec<String> = text.lines().filter_map(|l| l.split_once("FIXTURE ").map(|(_, s)| s.trim().to_owned())).collect();
        if let Some(failed) = steps.iter().find(|s| s.starts_with("fail ")) {
            panic!("the Wi-Fi side failed: {failed}\nsteps: {steps:#?}\nconsole:\n{}", device.console_tail());
        }
        if steps.iter().any(|s| s == "done") {
            break steps;
        }
        assert!(Instant::now() < end, "the Wi-Fi side did not finish within 900 s\nsteps: {steps:#?}\nconsole:\n{}", device.console_tail());
        std::thread::sleep(Duration::from_secs(2));
    };
    // The console may carry a line twice (written to it, and forwarded by the journal).
    let mut reported: Vec<&str> = steps.iter().filter_map(|s| s.strip_prefix("ok ")).map(|s| s.split(' ').next().unwrap_or("")).collect();
    reported.dedup();
    assert_eq!(reported, WIFI_STEPS, "{steps:#?}");
    for step in &steps {
        eprintln!("wifi side: {step}");
    }
}
