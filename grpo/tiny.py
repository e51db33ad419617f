"""A tiny transformers model and character tokenizer, built offline (for the demo and the tests)."""
import torch

CHARS = "0123456789+-*=() "


def build_tokenizer(chars=CHARS, extra_tokens=0):
    """One token per character, `<pad>`/`<eos>` special, left padding; saves with save_pretrained.
    extra_tokens: that many more characters (CJK ideographs) for a vocabulary of a real model's
    size (the chunked output head only acts when the vocabulary is larger than the hidden size)."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    chars = chars + "".join(chr(0x4E00 + i) for i in range(extra_tokens))
    vocab = {"<pad>": 0, "<eos>": 1, **{c: i + 2 for i, c in enumerate(chars)}}
    t = Tokenizer(models.WordLevel(vocab, unk_token="<pad>"))
    t.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    t.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(tokenizer_object=t, pad_token="<pad>", eos_token="<eos>",
                                   padding_side="left")


def build_model(vocab_size, seed=0, hidden=128, layers=4, heads=4, max_len=64, tie=True):
    """A Llama-architecture causal LM of about 1M parameters (Llama, not Qwen2: transformers maps
    the qwen2 model type to Qwen2Tokenizer and would replace the character tokenizer)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=vocab_size, hidden_size=hidden, intermediate_size=4 * hidden,
                      num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=heads,
                      max_position_embeddings=max_len, tie_word_embeddings=tie,
                      pad_token_id=0, eos_token_id=1, bos_token_id=None)
    return LlamaForCausalLM(cfg)


def save_tiny(path, seed=0, extra_tokens=0, **kw):
    """Build and save_pretrained a tiny model + tokenizer into `path`; returns (model, tokenizer).
    The build_model arguments (hidden, layers, heads, max_len) and extra_tokens make it larger."""
    tok = build_tokenizer(extra_tokens=extra_tokens)
    model = build_model(len(tok), seed=seed, **kw)
    model.generation_config.pad_token_id, model.generation_config.eos_token_id = 0, 1
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return model, tok
