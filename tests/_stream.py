"""A real-time stream served on 127.0.0.1 for the live tests: ``python _stream.py PORT SECONDS`` encodes a
moving real face (H.264 in MPEG-TS) at 25 fps, sending each frame at its time, to the one client that
connects; prints ``ready`` once it is about to listen."""

import sys
import time
from pathlib import Path

import av

sys.path.insert(0, str(Path(__file__).parent))
from _media import astronaut_frames  # noqa: E402


def main() -> None:
    port, seconds, fps = int(sys.argv[1]), float(sys.argv[2]), 25
    frames = astronaut_frames(int(fps * seconds))
    print("ready", flush=True)
    out = av.open(f"tcp://127.0.0.1:{port}?listen=1", mode="w", format="mpegts")
    stream = out.add_stream("libx264", rate=fps, options={"preset": "ultrafast", "tune": "zerolatency"})
    stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
    t0 = time.monotonic()
    try:
        for i, frame in enumerate(frames):
            delay = t0 + i / fps - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    except (BrokenPipeError, ConnectionResetError, av.error.FFmpegError):
        pass  # the client went away
    finally:
        out.close()


if __name__ == "__main__":
    main()
