"""Reference losses of the ``latent_topics`` corpus: what a perfect model would score.

    python tools/latent_topics_bounds.py [--split valid] [data options, e.g. --arity 1]

Scores the split's words with the generator's own rule under three readers and prints nats per
word (about the unit of a run's validation loss, which also scores each document's EOS):

- ``topic known``: knows the rule (the topic from the last ``arity`` words): the Bayes floor;
- ``bigram``: the best a model can do from the current word alone, with word-pair statistics
  counted on the train split (add-0.1 smoothing): what next-token prediction reaches without
  the rule when ``arity >= 2`` (with ``arity = 1`` the rule is a bigram rule);
- ``unigram``: word frequencies only.

The gap between ``bigram`` and ``topic known`` is what finding the rule is worth.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import fields
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cocomix.concepts.latent_topics import topic_of  # noqa: E402
from cocomix.eval.cli import run_tool  # noqa: E402
from cocomix.data.corpora.latent_topics import (  # noqa: E402
    LatentTopicsConfig,
    LatentTopicsCorpus,
    generate_documents,
    topic_support,
)


def bounds(config: LatentTopicsConfig, split: str) -> dict[str, float]:
    v, p = config.num_words, config.p_topic
    member = np.zeros((config.num_topics, v), dtype=bool)
    for z, words in enumerate(topic_support(config)):
        member[z, words] = True
    pairs = np.full((v, v), 0.1)
    for words in generate_documents(config, "train"):
        np.add.at(pairs, (words[:-1], words[1:]), 1.0)
    bigram = pairs / pairs.sum(1, keepdims=True)
    unigram = pairs.sum(0) / pairs.sum()
    known = pair = single = 0.0
    scored = 0
    for words in generate_documents(config, split):
        for t in range(config.arity, len(words)):
            word, topic = words[t], topic_of(words[t - config.arity : t], config.num_topics)
            known -= math.log(p * member[topic, word] / config.topic_words + (1 - p) / v)
            pair -= math.log(bigram[words[t - 1], word])
            single -= math.log(unigram[word])
            scored += 1
    return {"topic known": known / scored, "bigram": pair / scored, "unigram": single / scored,
            "words": scored}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--split", default="valid", choices=("train", "valid", "test"))
    defaults = LatentTopicsConfig()
    for option in fields(LatentTopicsConfig):
        parser.add_argument(f"--{option.name}", type=type(getattr(defaults, option.name)),
                            default=getattr(defaults, option.name))
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    args = parser.parse_args(argv)
    return run_tool(lambda: report(args), debug=args.debug)


def report(args: argparse.Namespace) -> int:
    config = LatentTopicsConfig(**{f.name: getattr(args, f.name) for f in fields(LatentTopicsConfig)})
    LatentTopicsCorpus(config)  # checks the options as the corpus does (one line per mistake)
    result = bounds(config, args.split)
    print(f"latent_topics {args.split}: {result.pop('words')} words after each document's first "
          f"{config.arity}, nats per word")
    for name, value in result.items():
        print(f"  {name:32s} {value:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
