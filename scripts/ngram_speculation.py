"""onnxruntime-genai's built-in n-gram (prompt-lookup) speculation against plain greedy decoding
on the same BeaverTails items at batch 1: wall time, tokens, and whether the outputs match.

    python scripts/ngram_speculation.py BUNDLE [N]

Measured once for issue 19 (docs/bench, round 2): slower (0.77-0.83x on nano) and not greedy,
so guardcli does not use it. Kept so the measurement can be rerun on a newer onnxruntime-genai.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

BENCH = Path("../shared/data/guardreasoner/benchmark/0_A_beaver_tails.json")
SETTINGS = (
    None,
    {"ngram_size": 3, "max_draft_tokens": 4},
    {"ngram_size": 2, "max_draft_tokens": 8},
)


def main() -> None:
    import numpy as np
    import onnxruntime_genai as og

    from guardcli.bundles.resolve import resolve_model

    bundle = resolve_model(sys.argv[1]).path
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 4
    items = json.loads(BENCH.read_text())[:count]
    config = og.Config(str(bundle))
    options = {"intra_op_num_threads": 2, "inter_op_num_threads": 1}
    config.overlay(json.dumps({"model": {"decoder": {"session_options": options}}}))
    model = og.Model(config)
    tokenizer = og.Tokenizer(model)
    prompts = [list(tokenizer.encode(f"{it['instruction']}\n{it['input']}")) for it in items]
    reference = None
    for speculative in SETTINGS:
        outputs, start = [], time.perf_counter()
        for ids in prompts:
            params = og.GeneratorParams(model)
            params.set_search_options(max_length=len(ids) + 400, batch_size=1, do_sample=False)
            if speculative:
                params.set_speculative_options(**speculative)
            generator = og.Generator(model, params)
            generator.append_tokens(np.asarray([ids], dtype=np.int32))
            while not generator.is_done():
                generator.generate_next_token()
            outputs.append(list(generator.get_sequence(0))[len(ids) :])
        seconds = time.perf_counter() - start
        if reference is None:
            reference, base = outputs, seconds
        same = sum(a == b for a, b in zip(outputs, reference, strict=True))
        print(
            f"{speculative or 'greedy'}: {seconds:.1f} s ({base / seconds:.2f}x), "
            f"{sum(map(len, outputs))} tokens, {same} of {count} equal to greedy"
        )


if __name__ == "__main__":
    main()
