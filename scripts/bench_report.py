"""Renders target/bench/*.json (written by scripts/bench) as the tables and the plot of
docs/benchmarks.md. Prints Markdown to stdout; writes the plot to the path given.

Each part is rendered when its file is there: runs.jsonl (throughput, latency, the engine beside
the bare-handler floor, and the plot), memory.json, recovery.json, big-room.jsonl (one room, many
sockets: state visibility, message delivery, CPU per delivered frame), and cluster.jsonl (one engine vs a cluster and the takeover times,
from `roomstate-load cluster`). A directory that holds only cluster.jsonl renders that part alone
and needs no matplotlib."""

import json
import statistics
import sys
from pathlib import Path

out = Path(sys.argv[1] if len(sys.argv) > 1 else "target/bench")
plot_path = Path(sys.argv[2] if len(sys.argv) > 2 else "docs/bench-latency.png")


def json_lines(path):
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


runs = json_lines(out / "runs.jsonl")
closed = {r["target"]: r for r in runs if r["mode"] == "closed"}
opened = [r for r in runs if r["mode"] == "open"]

def ms(x):
    return f"{x:.2f}"

def ratio(a, b):
    return f"{a['throughput'] / b['throughput']:.2f}x" if a and b and b["throughput"] else "–"

def us_per_ack(r, process="engine"):
    """CPU µs per ack of the process serving the run (`--cpu engine=PID`), if it was measured."""
    cpu = (r or {}).get("cpu", {}).get(process)
    return cpu["us_per_ack"] if cpu else None

def us(x):
    return "–" if x is None else f"{x:.1f}"

def us_of(r, prefix):
    """CPU µs per ack summed over the watched processes whose name starts with `prefix` (e.g.
    `redis-replica-`), or None when none was watched."""
    cpus = [c["us_per_ack"] for name, c in ((r or {}).get("cpu") or {}).items() if name.startswith(prefix)]
    return sum(cpus) if cpus else None

def all_us(r):
    """CPU µs per ack of every process watched in the run (the serving process, Redis, MariaDB,
    the load generator), or None for a run that watched none."""
    cpus = [c["us_per_ack"] for c in ((r or {}).get("cpu") or {}).values()]
    return sum(cpus) if cpus else None

def cores_busy(r):
    """Cores the watched processes kept busy over the window: all µs/ack × acks/s."""
    total = all_us(r)
    return "–" if total is None else f"{total * r['throughput'] / 1e6:.2f}"

def user_kernel(r, process="engine"):
    """`user / kernel` CPU µs per ack of the serving process (a run from before the split: –)."""
    cpu = (r or {}).get("cpu", {}).get(process) or {}
    if "user_us_per_ack" not in cpu:
        return "–"
    return f"{cpu['user_us_per_ack']:.1f} / {cpu['system_us_per_ack']:.1f}"

if runs:
    print("### Throughput, closed loop (each client sends its next request when the last is acknowledged)\n")
    print("| target | clients | acks/s | p50 ms | p90 ms | p99 ms | max ms | server CPU µs/ack | engine ÷ target | engine-1-user-rooms ÷ target |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    engine = closed.get("engine")
    solo = closed.get("engine-1-user-rooms")

    for name in ["engine", "engine-1-user-rooms", "engine-http", "floor", "floor-http",
                 "redis-per-mutation", "mysql-per-mutation"]:
        r = closed.get(name)
        if not r:
            continue
        lat = r["latency_ms"]
        print(f"| {name} | {r['clients']} | {r['throughput']:.0f} | {ms(lat['p50'])} | {ms(lat['p90'])} | "
              f"{ms(lat['p99'])} | {ms(lat['max'])} | {us(us_per_ack(r))} | {ratio(engine, r)} | {ratio(solo, r)} |")

    if any(all_us(closed.get(n)) for n in closed):
        print("\n### CPU per ack of every process (closed loop, the same runs)\n")
        print("Each run's CPU per acknowledged mutation over its measured window (`/proc`), for every "
              "process that serves it: the engine or the floor, the Redis primary, its two replicas and "
              "three sentinels, MariaDB for its baseline, and the load generator itself. All of them "
              "share the machine's cores, so a design's throughput here follows the sum, not the "
              "serving process's part alone; cores busy = the sum × acks/s.\n")
        print("| target | acks/s | engine or floor µs/ack | Redis primary µs/ack | Redis replicas µs/ack "
              "| sentinels µs/ack | MariaDB µs/ack | load generator µs/ack | all µs/ack | cores busy |")
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for name in ["engine", "engine-1-user-rooms", "engine-http", "floor", "floor-http",
                     "redis-per-mutation", "mysql-per-mutation"]:
            r = closed.get(name)
            if not r or all_us(r) is None:
                continue
            print(f"| {name} | {r['throughput']:.0f} | {us(us_per_ack(r))} | "
                  f"{us(us_per_ack(r, 'redis-primary'))} | {us(us_of(r, 'redis-replica-'))} | "
                  f"{us(us_of(r, 'redis-sentinel-'))} | {us(us_per_ack(r, 'mariadb'))} | "
                  f"{us(us_per_ack(r, 'load-generator'))} | {us(all_us(r))} | {cores_busy(r)} |")

    floors = [(t, closed.get(e), closed.get(f)) for t, e, f in
              [("WebSocket", "engine", "floor"), ("HTTP", "engine-http", "floor-http")]]
    if any(f for _, _, f in floors):
        print("\n### The engine beside the bare-handler floor (closed loop, the same clients and mix)\n")
        print("The floor (`roomstate-floor`) parses each request, applies it to an in-memory tally and "
              "answers: the HTTP/WebSocket edge alone, no journal, no fan-out. CPU of the serving process "
              "per acknowledged mutation, over the same measured window.\n")
        print("| transport | engine µs/ack | floor µs/ack | engine ÷ floor | engine − floor µs | engine user / kernel µs | floor user / kernel µs | engine acks/s | floor acks/s | Redis primary µs/ack (engine) |")
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for transport, e, f in floors:
            if not (e and f):
                continue
            eu, fu = us_per_ack(e), us_per_ack(f)
            times = f"{eu / fu:.1f}x" if eu and fu else "–"
            gap = us(eu - fu) if eu is not None and fu is not None else "–"
            print(f"| {transport} | {us(eu)} | {us(fu)} | {times} | {gap} | {user_kernel(e)} | "
                  f"{user_kernel(f)} | {e['throughput']:.0f} | {f['throughput']:.0f} | "
                  f"{us(us_per_ack(e, 'redis-primary'))} |")

    print("\n### Latency vs offered load, open loop (latency counted from when each request was due)\n")
    print("Sent late: how long after its due time the client sent each request (the load generator's "
          "own lag, on the cores the servers share; the latency counts it). The baselines' clients send "
          "one request at a time, so theirs also counts waiting for the previous answer.\n")
    print("| target | offered/s | acks/s | p50 ms | p99 ms | max ms | sent late p50 / p99 ms | engine µs/ack | "
          "all µs/ack | cores busy |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in sorted(opened, key=lambda r: (r["target"], r["offered_rate"])):
        lat = r["latency_ms"]
        lag = r.get("send_lag_ms")
        late = f"{ms(lag['p50'])} / {ms(lag['p99'])}" if lag else "–"
        print(f"| {r['target']} | {r['offered_rate']:.0f} | {r['throughput']:.0f} | {ms(lat['p50'])} | "
              f"{ms(lat['p99'])} | {ms(lat['max'])} | {late} | {us(us_per_ack(r))} | {us(all_us(r))} | "
              f"{cores_busy(r)} |")

mem_path = out / "memory.json"
if mem_path.exists():
    m = json.loads(mem_path.read_text().splitlines()[-1])
    print("\n### Memory (resident set of a fresh engine, before and after)\n")
    print("| what | count | bytes each | RSS before → after |")
    print("| --- | ---: | ---: | --- |")
    print(f"| idle open room | {m['rooms']} | {m['bytes_per_room']:.0f} | "
          f"{m['rss_start_bytes'] >> 20} MiB → {m['rss_rooms_bytes'] >> 20} MiB |")
    print(f"| connected socket | {m['sockets']} | {m['bytes_per_socket']:.0f} | "
          f"{m['rss_rooms_bytes'] >> 20} MiB → {m['rss_sockets_bytes'] >> 20} MiB |")

rec_path = out / "recovery.json"
if rec_path.exists():
    r = json.loads(rec_path.read_text().splitlines()[-1])
    print("\n### Recovery\n")
    # Runs from before the benchmark waited for Redis to settle after the fill have no settle_s.
    settled = f" once Redis had settled ({r['settle_s']:.1f} s after the fill)" if "settle_s" in r else ""
    # Runs from before the fill's appends were sized have no events_per_append (each room's
    # events went in one append then, one entry per event in the log's format of that time).
    entries = (f", written {r['events_per_append']} per append (so per log entry)"
               if "events_per_append" in r else "")
    print(f"{r['rooms']} open rooms × {r['events_per_room']} events in the sentinel journal{entries}: "
          f"restart to serving{settled} in **{r['restart_s']:.2f} s** ({r['rooms_after']} rooms open).")

big = json_lines(out / "big-room.jsonl")
if big:
    print("\n### Big room: one room, many sockets, a steady vote rate (open loop)\n")
    print("Visibility: from a vote's ack to the first `state` frame showing it, at each socket, over "
          "every (vote, socket) pair (the contract: the newest state within 100 ms); since the request: "
          "the same from when the vote was due (the change became durable in between). Delivery: from a "
          "chat message's ack to its `message` frame at each socket. CPU per delivered frame: the "
          "engine's CPU over the window ÷ every frame the sockets received in it.\n")
    print("| sockets | votes/s + msgs/s offered | acked/s | ack p50 / p99 ms | state visibility p50 / p99 / max ms "
          "| over 100 ms | never seen | since the request p50 / p99 ms | message delivery p50 / p99 ms "
          "| messages missing | frames/s delivered | engine µs/frame | engine µs/ack | engine cores "
          "| load generator cores |")
    print("| ---: | --- | ---: | --- | --- | ---: | ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in big:
        v, m = r["state_visibility"], r["message_delivery"]
        # Runs recorded before the since-the-request figures existed have none.
        vr, lat = r.get("state_visibility_since_request"), r["ack_latency_ms"]
        since = f"{vr['p50_ms']:.1f} / {vr['p99_ms']:.1f}" if vr else "–"
        e = r["cpu"].get("engine", {})
        load = r["cpu"].get("load-generator", {})
        acked = (r["votes_acked"] + r["messages_acked"]) / r["duration_s"]
        cores = lambda c: f"{c['cores']:.2f}" if c else "–"
        print(f"| {r['sockets']} | {r['vote_rate']:.0f} + {r['message_rate']:.0f} | {acked:.0f} | "
              f"{lat['p50']:.1f} / {lat['p99']:.1f} | "
              f"{v['p50_ms']:.1f} / {v['p99_ms']:.1f} / {v['max_ms']:.1f} | {v['over_100ms_share'] * 100:.2f} % | "
              f"{v['missing']} | {since} | "
              f"{m['p50_ms']:.1f} / {m['p99_ms']:.1f} | {m['missing']} | {r['frames_per_s']:.0f} | "
              f"{us(e.get('us_per_frame'))} | {us(e.get('us_per_ack'))} | {cores(e)} | {cores(load)} |")

def median_of(rows, value):
    return statistics.median(value(r) for r in rows)

cluster = json_lines(out / "cluster.jsonl")
through = [r for r in cluster if r.get("kind") == "throughput"]
takeovers = [r for r in cluster if r.get("kind") == "takeover"]
if through:
    print("\n### One engine vs a cluster (closed loop, the same clients and mix)\n")
    print("| deployment | transport | acks/s per round | acks/s (median) | ÷ one engine | p99 ms (median) "
          "| engine µs/ack, all nodes | Redis primary µs/ack | load generator µs/ack | forwarded |")
    print("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    transports = list(dict.fromkeys(r["transport"] for r in through))
    shapes = sorted({(r["deployment"], r["nodes"]) for r in through},
                    key=lambda s: (s[0] != "single", s[1]))
    for transport in transports:
        base = None
        for deployment, nodes in shapes:
            rows = [r for r in through if r["transport"] == transport
                    and r["deployment"] == deployment and r["nodes"] == nodes]
            if not rows:
                continue
            acks = median_of(rows, lambda r: r["throughput"])
            base = base or acks
            per_round = ", ".join(f"{r['throughput']:.0f}" for r in rows)
            forwarded = "–"
            if rows[0]["forwarded_share"] is not None:
                forwarded = f"{median_of(rows, lambda r: r['forwarded_share']) * 100:.0f} %"
            print(f"| {rows[0]['target']} | {'WebSocket' if transport == 'ws' else 'HTTP'} | {per_round} | "
                  f"{acks:.0f} | {acks / base:.2f}x | {median_of(rows, lambda r: r['latency_ms']['p99']):.1f} | "
                  f"{median_of(rows, lambda r: r['engine_us_per_ack']):.1f} | "
                  f"{median_of(rows, lambda r: r['redis_us_per_ack']):.1f} | "
                  f"{median_of(rows, lambda r: r['load_us_per_ack']):.1f} | {forwarded} |")

if takeovers:
    print("\n### Takeover: the owner of some rooms killed (SIGKILL) under a steady load\n")
    print("| nodes | `cluster.lease_ms` | kills | rooms moved | kill → first ack, per kill (median of its rooms) "
          "| over all rooms: min | median | max | median ÷ lease | not resumed |")
    print("| ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |")

    def seconds(v):
        return "–" if v is None else f"{v / 1000:.2f} s"

    for nodes, lease in sorted({(r["nodes"], r["lease_ms"]) for r in takeovers}):
        rows = [r for r in takeovers if r["nodes"] == nodes and r["lease_ms"] == lease]
        every = [ms for r in rows for ms in r["takeover_ms"]]
        middle = statistics.median(every) if every else None
        per_kill = ", ".join(seconds(r["median_ms"]) for r in rows)
        print(f"| {nodes} | {lease} | {len(rows)} | {sum(r['rooms_moved'] for r in rows)} | {per_kill} | "
              f"{seconds(min(every, default=None))} | {seconds(middle)} | {seconds(max(every, default=None))} | "
              f"{'–' if middle is None else f'{middle / lease:.2f}x'} | {sum(r['not_resumed'] for r in rows)} |")

if opened:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5), dpi=120)
    styles = {"engine": ("tab:blue", "o"), "engine-1-user-rooms": ("tab:cyan", "D"),
              "redis-per-mutation": ("tab:orange", "s"), "mysql-per-mutation": ("tab:red", "^")}
    for target, (color, marker) in styles.items():
        points = sorted((r["offered_rate"], r["latency_ms"]["p99"], r["latency_ms"]["p50"])
                        for r in opened if r["target"] == target)
        if not points:
            continue
        xs = [p[0] for p in points]
        ax.plot(xs, [p[1] for p in points], color=color, marker=marker, label=f"{target} p99")
        ax.plot(xs, [p[2] for p in points], color=color, marker=marker, linestyle=":", alpha=0.6,
                label=f"{target} p50")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("offered load (acknowledged mutations per second, log)")
    ax.set_ylabel("ack latency (ms, log)")
    ax.set_title("roomstate vs per-mutation designs: latency vs offered load (2 cores, loopback)")
    ax.axhline(10, color="grey", linewidth=0.8, linestyle="--")
    ax.text(ax.get_xlim()[0] * 1.1, 10.5, "10 ms target", color="grey", fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(plot_path)
    print(f"\n![latency vs offered load]({plot_path.name})")
