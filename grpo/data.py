"""Prompts and reward columns from JSONL, parquet or a `datasets` name; prompt formatting."""
import json
import os


def load_rows(source, prompt_column="prompt", limit=0):
    """A list of dicts. `.jsonl`/`.json` files are read directly; anything else (parquet, csv, a
    dataset directory or hub name) goes through `datasets`."""
    if source.endswith(".jsonl") or source.endswith(".json"):
        if not os.path.exists(source):
            raise FileNotFoundError(f"data file not found: {source}")
        with open(source) as f:
            text = f.read()
        if source.endswith(".json") and text.lstrip().startswith("["):
            rows = json.loads(text)
        else:
            rows = []
            for n, line in enumerate(text.splitlines(), 1):
                if line.strip():
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError as e:
                        raise ValueError(f"{source}:{n}: not valid JSON ({e.msg})") from None
    else:
        import datasets

        ext = os.path.splitext(source)[1].lstrip(".")
        if ext in ("parquet", "csv", "arrow"):
            ds = datasets.load_dataset(ext, data_files=source, split="train")
        elif os.path.isdir(source) and os.path.exists(os.path.join(source, "dataset_info.json")):
            ds = datasets.load_from_disk(source)
        else:
            ds = datasets.load_dataset(source, split="train")
        rows = ds.to_list()
    if not rows:
        raise ValueError(f"{source}: no rows")
    bad = [i for i, r in enumerate(rows) if not isinstance(r, dict) or prompt_column not in r]
    if bad:
        raise ValueError(f"{source}: rows {bad[:5]} have no {prompt_column!r} column "
                         f"(columns: {sorted(rows[0]) if isinstance(rows[0], dict) else 'not an object'})")
    return rows[:limit] if limit else rows


def prompt_text(prompt, tok):
    """A string prompt is used as is; a list of chat messages goes through the chat template."""
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, list) and all(isinstance(m, dict) and "content" in m for m in prompt):
        if not getattr(tok, "chat_template", None):
            raise ValueError("prompts are chat messages but the tokenizer has no chat template")
        return tok.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
    raise ValueError(f"a prompt must be a string or a list of {{'role', 'content'}} messages, got {prompt!r:.80}")


def encode_prompts(rows, tok, column, max_len, device):
    """Left-padded prompt ids and mask; a prompt longer than max_len is an error, not cut."""
    texts = [prompt_text(r[column], tok) for r in rows]
    enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    lens = enc.attention_mask.sum(1)
    if int(lens.max()) > max_len:
        i = int(lens.argmax())
        raise ValueError(f"prompt of {int(lens[i])} tokens exceeds max_prompt_len {max_len}: {texts[i][:80]!r}")
    return enc.input_ids.to(device), enc.attention_mask.to(device)
