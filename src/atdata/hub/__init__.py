"""The Hugging Face Hub: load ``hf://datasets/org/name`` repositories typed, publish index
datasets to them with a dataset card (:mod:`.reading`, :mod:`.publish`, :mod:`.card`).

Nothing here imports ``huggingface_hub`` until it is used (``pip install 'atdata[hf]'``).
"""

from .card import CardFacts, CardShard, HubCard, dataset_card, read_card
from .publish import HubPublished, publish_to_hub
from .reading import load_hub

__all__ = [
    "CardFacts",
    "CardShard",
    "HubCard",
    "HubPublished",
    "dataset_card",
    "load_hub",
    "publish_to_hub",
    "read_card",
]
