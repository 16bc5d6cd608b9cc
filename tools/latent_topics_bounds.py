"""Reference losses of the ``latent_topics`` corpus: what a perfect model would score.

    python tools/latent_topics_bounds.py [--split valid] [data options, e.g. --p_topic 0.5]

Scores the split's documents, read from their start, with the generator's own tables under three
readers, and prints nats per token (the unit of a run's validation loss):

- ``topic known``: knows the header rule, so the topic from the last key on (the Bayes floor);
- ``topic from words``: ignores the keys and infers the topic from the body words seen so far
  (exact Bayesian filtering over the K topics);
- ``topic ignored``: averages over topics.

Keys cost log K each and the document's end costs log(doc_max - doc_min + 1) per document under
every reader. The gap between the first two is what learning the header rule is worth once the
tables are known; the concept line gives the matching floor of the concept loss (cross-entropy of
the topic label) for a reader that uses the words only.
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
from cocomix.data.corpora.latent_topics import (  # noqa: E402
    LatentTopicsConfig,
    TopicWorld,
    generate_documents,
)


def tables(config: LatentTopicsConfig) -> tuple[np.ndarray, np.ndarray]:
    """(K, V) topic word distributions and the (V, V) background chain."""
    world = TopicWorld.build(config)
    topic_p = np.diff(world.topic_cdf, prepend=0.0)
    next_p = np.diff(world.next_cdf, prepend=0.0)
    phi = np.zeros((config.num_topics, config.num_words))
    for z in range(config.num_topics):
        np.add.at(phi[z], world.topic_support[z], topic_p)
    chain = np.zeros((config.num_words, config.num_words))
    for word in range(config.num_words):
        np.add.at(chain[word], world.next_words[word], next_p)
    return phi, chain


def bounds(config: LatentTopicsConfig, split: str) -> dict[str, float]:
    phi, chain = tables(config)
    p, k = config.p_topic, config.num_topics
    start = chain.mean(0)  # the chain's state before the first word is uniform
    per_doc = config.key_arity * math.log(k) + math.log(config.doc_max - config.doc_min + 1)
    known = words = ignored = concept = 0.0
    tokens = body_tokens = 0
    for keys, body in generate_documents(config, split):
        topic = topic_of(keys, k)
        posterior = np.full(k, 1.0 / k)
        background = start
        for word in body:
            concept -= math.log(posterior[topic])
            known -= math.log(p * phi[topic, word] + (1 - p) * background[word])
            words -= math.log(p * posterior @ phi[:, word] + (1 - p) * background[word])
            ignored -= math.log(p * phi[:, word].mean() + (1 - p) * background[word])
            posterior = posterior * (p * phi[:, word] + (1 - p) * background[word])
            posterior /= posterior.sum()
            background = chain[word]
        known += per_doc
        words += per_doc
        ignored += per_doc
        tokens += len(keys) + len(body) + 1
        body_tokens += len(body)
    return {"topic known": known / tokens, "topic from words": words / tokens,
            "topic ignored": ignored / tokens, "concept loss, topic from words": concept / body_tokens,
            "tokens": tokens}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--split", default="valid", choices=("train", "valid", "test"))
    defaults = LatentTopicsConfig()
    for option in fields(LatentTopicsConfig):
        parser.add_argument(f"--{option.name}", type=type(getattr(defaults, option.name)),
                            default=getattr(defaults, option.name))
    args = parser.parse_args()
    config = LatentTopicsConfig(**{f.name: getattr(args, f.name) for f in fields(LatentTopicsConfig)})
    result = bounds(config, args.split)
    print(f"latent_topics {args.split}: {result.pop('tokens')} tokens, nats per token")
    for name, value in result.items():
        print(f"  {name:32s} {value:.4f}")


if __name__ == "__main__":
    main()
