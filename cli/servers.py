"""`adaptrec servers`: status or stop of the embedded Postgres and Redis under ./var/."""
from __future__ import annotations


def add_parser(sub) -> None:
    servers = sub.add_parser("servers", help="status or stop of the embedded Postgres and Redis under ./var/")
    servers.add_argument("action", choices=["status", "stop"])
    servers.set_defaults(func=cmd_servers)


def cmd_servers(args) -> int:
    from app.config import Settings
    from cli.embedded import EmbeddedServers

    settings = Settings.from_env()
    servers = EmbeddedServers(settings.var_dir)
    if args.action == "status":
        for k, v in servers.status().items():
            print(f"{k}: {v}")
    else:
        stopped = servers.release()
        print("stopped" if stopped else "still held by running adaptrec processes: "
              + ", ".join(map(str, servers.status()["holders"])))
    return 0
