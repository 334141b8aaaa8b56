from kronos import Kronos, KronosTokenizer
def test_tiny_pair_loads(tiny_pair):
    tok, pred = tiny_pair
    assert KronosTokenizer.from_pretrained(tok).s1_bits == Kronos.from_pretrained(pred).s1_bits == 6
