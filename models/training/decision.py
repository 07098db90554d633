"""Whether a retrain or a rebuild has training to do: the rule, apart from the flow that acts on it.

A retrain fine-tunes the champion of its (dataset, config); it has nothing to do when the champion was trained on
this data with this config, or when a challenger from that champion on this data and config was tried already.
A rebuild has nothing to do when the newest run of the config has this data, config, parent and budget.
"""

from __future__ import annotations

from typing import Literal

from models.training.launch import same_budget
from storage.registry import Model, SyncRegistry


def training_decision(mode: Literal["train", "retrain", "rebuild"], registry: SyncRegistry, dataset: str, config: str,
                      config_hash: str, fingerprint: str, init_from: str | None, max_steps: int | None,
                      epochs: int | None) -> tuple[Model | None, Model | None, str | None]:
    """(champion, the run to report as unchanged, why) for retrain and rebuild; (champion, None, None) when
    there is training to do."""
    champion = registry.champion(dataset, config) if mode == "retrain" else None
    if mode == "retrain":
        if champion and (champion.data_fingerprint, champion.config_hash) == (fingerprint, config_hash):
            return champion, champion, (f"the champion `{champion.reference}` was trained on this data (fingerprint "
                                        f"`{fingerprint[:12]}`) with this config: nothing to retrain.")
        tried = registry.tried(dataset, config, fingerprint, config_hash, champion.id if champion else None)
        if tried:
            return champion, tried, (f"`{tried.reference}` was already trained from "
                                     f"{'champion `' + champion.reference + '`' if champion else 'scratch'} on this data "
                                     f"(fingerprint `{fingerprint[:12]}`) with this config: nothing to retrain.")
        return champion, None, None
    newest = registry.models(dataset, config)[-1:]  # rebuild: only the newest run of this config counts
    if newest and (newest[0].data_fingerprint, newest[0].config_hash, newest[0].parent_path) == (
            fingerprint, config_hash, init_from) and same_budget(newest[0].run_dir, max_steps, epochs, newest[0].steps):
        return None, newest[0], (f"Dataset `{dataset}` is unchanged since run `{newest[0].run_dir}` (fingerprint "
                                 f"`{fingerprint[:12]}`, config `{config}`, the same budget: {newest[0].steps} "
                                 f"steps): nothing to retrain.")
    return None, None, None
