"""`python -m gateway.trunk.sim --family quectel --by-id DIR`: a simulated modem for the lab.

Point a [[trunk.modems]] entry's by_id_dir at DIR. The far end answers after two seconds and plays
1 kHz; type `ring +4915…` on stdin to make the modem ring, `hangup` to end the call.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from gateway import logs
from gateway.trunk import tones
from gateway.trunk.profiles import Family
from gateway.trunk.sim.modem import FarEnd, Network, SimConfig, SimModem


async def _run(args: argparse.Namespace) -> None:
    config = SimConfig(
        family=Family(args.family),
        sim_pin=args.pin,
        network=Network(args.network),
        time_scale=args.time_scale,
        drift_ppm=args.drift_ppm,
    )
    sim = SimModem(config, args.by_id, FarEnd(source=tones.Tone((1000.0,))))
    await sim.start()
    print(f"simulated {args.family} modem: by-id links in {args.by_id}", flush=True)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    try:
        while line := (await reader.readline()).decode().strip():
            command, _, arg = line.partition(" ")
            if command == "ring":
                sim.incoming_call(arg or None)
            elif command == "hangup":
                sim.hang_up_far_end()
            elif command == "sms":
                sender, _, text = arg.partition(" ")
                sim.deliver_sms(sender, text)
            else:
                print("commands: ring [NUMBER] | hangup | sms SENDER TEXT", flush=True)
    finally:
        await sim.stop()


def main() -> int:
    """Run one simulated modem until stdin closes."""
    parser = argparse.ArgumentParser(prog="python -m gateway.trunk.sim", description=__doc__)
    parser.add_argument("--family", choices=[f.value for f in Family], default="quectel")
    parser.add_argument("--by-id", type=Path, required=True, help="directory for the by-id symlinks")
    parser.add_argument("--pin", default=None, help="the simulated SIM asks for this PIN")
    parser.add_argument("--network", choices=[n.value for n in Network], default="lte")
    parser.add_argument("--time-scale", type=float, default=1.0, help="multiplies the realistic delays")
    parser.add_argument("--drift-ppm", type=float, default=0.0)
    args = parser.parse_args()
    logs.configure("info", "console")
    asyncio.run(_run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
