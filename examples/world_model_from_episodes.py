"""Train a world model on stored episodes (no environment in the loop) and write a video of its
open-loop predictions.

    python examples/world_model_from_episodes.py                  # collects 20 episodes first
    python examples/world_model_from_episodes.py --episodes DIR   # any run's replay/ folder
    python examples/world_model_from_episodes.py --quick          # a smoke run of seconds

Episodes are ``.npz`` files of ``[T, ...]`` arrays, one row per step (what ``rssm train`` writes
into ``<run>/replay``). The video shows, per example, the real frames, the model's prediction
from the recorded actions after ``--context`` observed frames, and their difference.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

from rssm import Driver, RandomPolicy, Replay, WorldModel, env_spec, make_env
from rssm.config import load_presets
from rssm.run.train import Config
from rssm.run.video import open_loop_frames, write_video


def collect(directory: Path, episodes: int, env_name: str) -> None:
    """Random-policy episodes of ``env_name`` written as episode files into ``directory``."""
    env = make_env(env_name, seed=0, image_size=32, time_limit=50)
    replay = Replay(100_000, directory=directory)
    driver = Driver([env], seed=0)
    driver.on_step(replay.add)
    driver(RandomPolicy(env_spec(env).action_dim, seed=0), episodes=episodes)
    driver.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--episodes", type=Path, default=None, help="folder of episode files")
    parser.add_argument("--out", type=Path, default=Path("runs/example-open-loop.mp4"))
    parser.add_argument("--updates", type=int, default=1000)
    parser.add_argument("--context", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="a smoke run of seconds")
    args = parser.parse_args()
    torch.manual_seed(0)

    directory = args.episodes
    if directory is None:
        directory = Path("runs/example-episodes")
        if not any(directory.glob("*.npz")):
            collect(directory, 3 if args.quick else 20, "builtin:pointmass")
    replay = Replay(100_000, seed=0, directory=directory, preload=True)
    sample = replay.sample(1, 2)
    obs_space = gym.spaces.Dict(
        {
            key: gym.spaces.Box(0, 255, sample[key].shape[2:], np.uint8)
            if sample[key].dtype == np.uint8
            else gym.spaces.Box(-np.inf, np.inf, sample[key].shape[2:], np.float32)
            for key in sample
            if key in ("image", "state")
        }
    )
    action_dim = sample["action"].shape[-1]
    print(f"{replay.episodes} episodes, {len(replay)} steps, keys {sorted(obs_space)}")

    # A small DreamerV3 world model (the debug preset's sizes when --quick).
    sizes = ["dreamer_v3", "debug" if args.quick else "xxs"]
    model = WorldModel(obs_space, action_dim, load_presets(Config, sizes).world_model)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4 if not args.quick else 1e-3)
    updates = 5 if args.quick else args.updates
    for update in range(updates):
        batch = model.preprocess(replay.sample(16, 32))
        loss = model.loss(batch).loss
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1000.0)
        optimizer.step()
        if update % max(1, updates // 10) == 0 or update == updates - 1:
            print(f"update {update}: loss {loss.item():.3f}")

    model.eval()
    batch = model.preprocess(replay.sample(4, 32))
    with torch.no_grad():
        predicted = model.open_loop(batch, args.context, sample=False)
    key = "image" if "image" in predicted.pred else None
    if key is None:
        print("no image key: nothing to draw")
        return
    context = batch[key][:, : args.context].cpu().numpy()
    frames = open_loop_frames(context, predicted.true[key].cpu().numpy(),
                              predicted.pred[key].cpu().numpy())  # fmt: skip
    print(f"open-loop video: {write_video(args.out, frames)}")


if __name__ == "__main__":
    main()
