"""Deletion requests that arrive one after another (MUSE's "sustainability", arXiv 2407.06460):
each is unlearned starting from the model the previous one left, and after request k the model is
compared with retraining on D minus requests 1..k.

- ``forget=requests``: the real case, one file of sample ids per request (``forget.files``, in
  order; a single ``forget.path`` is one request). Ids that are not training samples are reported
  (``info``: requested, found, not found) and left out, or refused with ``forget.strict: true``.
- ``forget=sequential``: the benchmark's protocol, a random ``forget.ratio`` of the training set cut
  into ``forget.requests`` seeded requests of (nearly) equal size.
"""

from __future__ import annotations

import numpy as np

from unlearnbench.data.forget.base import ForgetStrategy, Selection, check_fraction, register
from unlearnbench.data.forget.ids import read_id_file
from unlearnbench.errors import ConfigError, DataError


@register("sequential")
class SequentialRequests(ForgetStrategy):
    def select(self, data, task, train, cfg, rng, scores=None, manipulated=None) -> Selection:
        ratio = check_fraction("forget.ratio", cfg.get("ratio"))
        count = cfg.get("requests", 4)
        n = round(ratio * len(train))
        if not isinstance(count, int) or isinstance(count, bool) or count < 1 or count > n:
            raise ConfigError(
                "forget.requests", count, f"a number of requests in 1..{n} (the forget samples)"
            )
        forget = rng.choice(train, size=n, replace=False)
        return Selection(forget, list(np.array_split(forget, count)), {"requests": count})


def request_files(cfg) -> list[str]:
    files = cfg.get("files")
    if files is None or files == []:
        files = [cfg.get("path")] if cfg.get("path") else []
    if isinstance(files, str):
        files = [files]
    if not files:
        raise ConfigError("forget.files", cfg.get("files"), "one file of sample ids per deletion request")
    return [str(f) for f in files]


@register("requests")
class DeletionRequests(ForgetStrategy):
    def select(self, data, task, train, cfg, rng, scores=None, manipulated=None) -> Selection:
        position = {data.ids[i]: int(i) for i in train}
        known = set(data.ids)
        requests, per_request, taken = [], [], set()
        for path in request_files(cfg):
            wanted = read_id_file(path)
            found = [position[i] for i in wanted if i in position and position[i] not in taken]
            unknown = [i for i in wanted if i not in known]
            held_out = [i for i in wanted if i in known and i not in position]
            repeated = [i for i in wanted if i in position and position[i] in taken]
            if cfg.get("strict", False) and (unknown or held_out):
                found_where = [f"{len(unknown)} not in the data: {unknown[:10]}"] if unknown else []
                found_where += [f"{len(held_out)} not training samples: {held_out[:10]}"] if held_out else []
                raise DataError(
                    f"request {path}: of its {len(wanted)} ids, {'; '.join(found_where)} (forget.strict)"
                )
            taken.update(found)
            requests.append(np.asarray(found, dtype=np.int64))
            per_request.append(
                {
                    "file": path,
                    "requested": len(wanted),
                    "found": len(found),
                    "not_in_data": unknown,
                    "not_training_samples": held_out,
                    "already_requested": repeated,
                }
            )
        if not any(len(r) for r in requests):
            raise DataError("the deletion requests name no training sample (see forget.files)")
        forget = np.concatenate(requests)
        return Selection(forget, requests, {"requests": per_request})
