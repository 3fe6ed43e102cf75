"""Renders target/bench/*.json (written by scripts/bench) as the tables and the plot of
docs/benchmarks.md. Prints Markdown to stdout; writes the plot to the path given."""

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

out = Path(sys.argv[1] if len(sys.argv) > 1 else "target/bench")
plot_path = Path(sys.argv[2] if len(sys.argv) > 2 else "docs/bench-latency.png")

runs = [json.loads(line) for line in (out / "runs.jsonl").read_text().splitlines() if line.strip()]
closed = {r["target"]: r for r in runs if r["mode"] == "closed"}
opened = [r for r in runs if r["mode"] == "open"]

def ms(x):
    return f"{x:.2f}"

print("### Throughput, closed loop (each client sends its next request when the last is acknowledged)\n")
print("| target | clients | acks/s | p50 ms | p90 ms | p99 ms | max ms | engine ÷ target | engine-1-user-rooms ÷ target |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
engine = closed.get("engine")
solo = closed.get("engine-1-user-rooms")

def ratio(a, b):
    return f"{a['throughput'] / b['throughput']:.2f}x" if a and b and b["throughput"] else "–"

for name in ["engine", "engine-1-user-rooms", "engine-http", "redis-per-mutation", "mysql-per-mutation"]:
    r = closed.get(name)
    if not r:
        continue
    lat = r["latency_ms"]
    print(f"| {name} | {r['clients']} | {r['throughput']:.0f} | {ms(lat['p50'])} | {ms(lat['p90'])} | "
          f"{ms(lat['p99'])} | {ms(lat['max'])} | {ratio(engine, r)} | {ratio(solo, r)} |")

print("\n### Latency vs offered load, open loop (latency counted from when each request was due)\n")
print("| target | offered/s | acks/s | p50 ms | p99 ms | max ms |")
print("| --- | ---: | ---: | ---: | ---: | ---: |")
for r in sorted(opened, key=lambda r: (r["target"], r["offered_rate"])):
    lat = r["latency_ms"]
    print(f"| {r['target']} | {r['offered_rate']:.0f} | {r['throughput']:.0f} | {ms(lat['p50'])} | "
          f"{ms(lat['p99'])} | {ms(lat['max'])} |")

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
    print(f"{r['rooms']} open rooms × {r['events_per_room']} events in the sentinel journal: "
          f"restart to serving in **{r['restart_s']:.2f} s** ({r['rooms_after']} rooms open).")

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
