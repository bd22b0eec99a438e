"""`sluice-dashboard --address HOST:PORT` (or `python -m sluice_dashboard`): serve the dashboard
with Streamlit.

It listens on HOST:PORT only, headless, with no usage statistics sent anywhere and no file
watcher; it reaches the services at SLUICE_STAGING_ADDRESS and SLUICE_SCHEDULER_ADDRESS.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

MAX_UPLOAD_MB = 2048  # one browser upload (a folder of files) at most


def streamlit_argv(address: str) -> list[str]:
    host, _, port = address.rpartition(":")
    app = Path(__file__).with_name("app.py")
    return [
        "streamlit", "run", str(app),
        "--server.address", host or "127.0.0.1",
        "--server.port", port,
        "--server.headless", "true",
        "--server.fileWatcherType", "none",
        "--server.runOnSave", "false",
        "--server.maxUploadSize", str(MAX_UPLOAD_MB),
        "--browser.gatherUsageStats", "false",
        "--global.developmentMode", "false",
        "--client.toolbarMode", "minimal",
        "--client.showErrorDetails", "none",
        "--logger.level", "info",
    ]  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="sluice-dashboard", description=__doc__)
    parser.add_argument("--address", default="127.0.0.1:8501", help="host:port to listen on")
    args = parser.parse_args(argv)
    try:
        from streamlit.web import cli
    except ImportError:
        sys.exit("sluice-dashboard: Streamlit is not installed (pip install 'sluice[dashboard]')")

    sys.argv = streamlit_argv(args.address)
    sys.exit(cli.main())


if __name__ == "__main__":
    main()
