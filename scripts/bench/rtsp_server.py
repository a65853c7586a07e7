#!/usr/bin/python3
"""An RTSP "IP camera" for scripts/bench/record: serves a pre-encoded H.264 elementary stream
at rtsp://127.0.0.1:PORT/cam over gst-rtsp-server, paced in real time, nothing encoded.

The media is shared, so every client gets the same one stream. It is not live: it prerolls at
the first DESCRIBE and plays from the file's start at the first PLAY; the server's sinks
sync on the pipeline clock, which paces it. Prints the bound port on stdout once it listens.
Needs Debian's python3-gi (run it with /usr/bin/python3).

usage: rtsp_server.py FILE.h264 [PORT]   (PORT 0 or absent: any free one)
"""
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def main():
    path, port = sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "0"
    Gst.init(None)
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(f'( filesrc location="{path}" ! qtdemux ! h264parse ! rtph264pay name=pay0 pt=96 config-interval=-1 )')
    factory.set_shared(True)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(port)
    server.get_mount_points().add_factory("/cam", factory)
    if server.attach(None) == 0:
        sys.exit(f"rtsp_server: cannot listen on 127.0.0.1:{port}")
    print(server.get_bound_port(), flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
