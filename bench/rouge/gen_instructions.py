"""Deterministic generator of varied synthetic Self-Instruct style instructions.

Used by the ROUGE-L benchmark (bench/rouge/run.sh) and the fixture script
(tests/fixtures/rouge/make_fixtures.py). Pure Python, standard library only.

A share of the output are near-duplicates of earlier instructions (word swaps, insertions,
deletions, synonym replacements, punctuation and case changes, exact repeats), as a model
generating round after round produces them. A few instructions carry digits, apostrophes,
accented Latin, CJK text, and some are long (> 64 tokens).

    python3 gen_instructions.py N SEED > out.jsonl     # one {"instruction": ...} per line
"""

import json
import random
import sys

VERBS = (
    "write generate create list describe explain name find identify suggest make provide design "
    "rewrite summarize classify compose compare translate give edit analyze convert outline predict "
    "evaluate develop construct propose recommend calculate determine choose select categorize "
    "paraphrase brainstorm draft plan organize rank sort estimate illustrate discuss formulate "
    "invent imagine produce prepare assess review critique defend justify interpret"
).split()

ADJS = (
    "short long simple creative funny formal informal persuasive detailed brief clear concise "
    "positive negative neutral healthy sustainable modern ancient traditional digital global local "
    "scientific historical political economic social cultural technical medical legal financial "
    "environmental emotional practical realistic unusual common popular famous important effective "
    "efficient affordable expensive cheap quick slow safe dangerous friendly polite rude happy sad "
    "angry calm bright dark colorful quiet loud small large tiny huge young old new fresh rare "
    "strange ordinary complex basic advanced beginner expert personal professional academic "
    "romantic mysterious magical futuristic rural urban coastal tropical arctic spicy sweet sour"
).split()

NOUNS = (
    "poem story essay letter email tweet headline slogan recipe song joke riddle speech report "
    "review summary article paragraph sentence question answer argument plan list guide tutorial "
    "dialogue conversation interview description definition metaphor analogy example "
    "product company startup business market customer employee manager team project meeting "
    "website app software program algorithm database network computer phone robot machine "
    "car bicycle train airplane ship rocket city village country island mountain river ocean "
    "forest desert garden park beach lake weather climate season winter summer spring autumn "
    "dog cat bird fish horse lion tiger elephant whale insect tree flower plant fruit vegetable "
    "apple banana orange coffee tea bread cheese pizza soup salad cake chocolate breakfast dinner "
    "school student teacher university class lesson exam homework library book novel author "
    "movie film actor music band concert painting artist museum theater game sport football "
    "basketball tennis chess exercise workout diet health doctor hospital medicine disease virus "
    "energy electricity solar wind water air pollution recycling plastic waste ocean carbon "
    "government election law policy tax economy money bank investment budget price job career "
    "family friend child parent grandmother neighbor community culture language history science "
    "physics chemistry biology mathematics equation number statistic chart table data model "
    "experiment theory research study survey result trend problem solution idea goal habit "
    "time morning night holiday vacation trip hotel restaurant menu kitchen house room furniture "
    "door window road bridge tower castle king queen hero villain dragon wizard planet star moon "
    "galaxy universe space internet privacy security password social media smartphone battery"
).split()

FUNCTION_FILLERS = "please briefly also the new some more really quickly carefully each".split()

SYNONYMS = {
    "write": "compose", "compose": "write", "create": "generate", "generate": "create",
    "list": "name", "name": "list", "describe": "explain", "explain": "describe",
    "find": "identify", "identify": "find", "make": "create", "give": "provide",
    "provide": "give", "short": "brief", "brief": "short", "story": "tale", "funny": "humorous",
    "big": "large", "large": "big", "small": "little", "important": "significant",
}

NUMS = "two three four five six seven ten 3 5 10 20 100".split()

FRAMES = [
    "{V} a {A} {N} about {N}.",
    "{V} {num} {A} ways to improve your {N}.",
    "{V} the following {N} into a {A} {N}.",
    "What is the {A} {N} of a {N}?",
    "How can a {N} help reduce {N} in a {A} {N}?",
    "{V} a list of {num} {N}s related to {N}.",
    "Explain why {N} is important for {N}.",
    "Describe the difference between a {N} and a {N}.",
    "{V} a {N} for a {A} {N} that sells {N}s and {N}s.",
    "Given a {N}, decide whether it is {A} or {A}.",
    "{V} an email to a {N} asking about the {N}.",
    "Classify the following {N} as either {A} or {A}.",
    "Rewrite this {N} to make it more {A}.",
    "Tell me a {A} fact about {N}s.",
    "Suggest {num} {A} names for a {N} {N}.",
    "{V} the main idea of the {N} in one sentence.",
    "What are the advantages and disadvantages of {A} {N}s?",
    "Compare {N}s and {N}s in terms of {N}.",
    "{V} a {A} {N} that teaches children about {N}.",
    "Find the {N} in the following {N} and {V} it.",
    "Imagine you are a {N}. {V} a {N} describing your {A} day.",
    "{V} {num} questions to ask a {N} about {N}.",
    "Convert the {N} from {N} to {N}.",
    "Predict what will happen to the {N} if the {N} becomes {A}.",
    "{V} a step-by-step {N} for cooking {A} {N}.",
    "Why do {N}s prefer {A} {N}s?",
    "Who invented the {N}, and why was it {A}?",
    "{V} the {N} below for {A} errors.",
    "{V} a {A} title for an {N} on {N} and {N}.",
    "Is a {N} {A} or {A}? Explain your answer.",
]

PREFIXES = [
    "In the context of {N}, ",
    "For a {A} {N}, ",
    "As a {A} {N}, ",
    "Using the {N} provided, ",
    "Based on your knowledge of {N} and {N}, ",
    "Without using {N}s, ",
    "For my {N} class, ",
]

SUFFIXES = [
    " Use no more than {num} words.",
    " Make it {A}.",
    " Keep it {A} and {A}.",
    " Write it in the style of a {N}.",
    " Include at least {num} examples.",
    " Output yes or no.",
    " The answer should be {A}.",
    " Explain how it affects {N} and {N}.",
    " Focus on {A} {N}s rather than {N}s.",
    " Mention the {N}, the {N} and the {N}.",
]

SPECIAL = [
    "Don't use the word '{N}' in your {N}.",
    "What's the user's {A} {N}? It's in the {N}.",
    "{V} a review of the café \"{N}\" in Zürich for a naïve tourist.",
    "Translate \"{N}\" into French: «le {N} est très {A}».",
    "Translate this Chinese sentence into English: 我今天很高兴，因为天气很好。",
    "写一首关于{cjk}的诗。",
    "请用三句话总结这篇关于{cjk}的文章。",
    "日本語で{cjk}について説明してください。",
    "İstanbul or Ankara: which {N} is more {A}?",
    "Convert 300 \u212a to degrees Celsius and explain the {N}.",
    "The price was $16.99 in 2023; {V} the {N} for 2024.",
    "{V} the Straße name and the \ufb01nal {N} of the route.",
    "Calculate 12.5% of 4,096 and {V} the {N} (round to 2 decimals).",
]

CJK_TOPICS = ["春天", "大海", "月亮", "友谊", "人工智能", "环境保护", "城市", "家乡"]


def fill(rng, template):
    out = template
    while "{" in out:
        for key, pool in (("{V}", VERBS), ("{A}", ADJS), ("{N}", NOUNS), ("{num}", NUMS), ("{cjk}", CJK_TOPICS)):
            if key in out:
                word = rng.choice(pool)
                if key == "{V}" and out.index(key) == 0:
                    word = word.capitalize()
                out = out.replace(key, word, 1)
        if "{" in out and not any(k in out for k in ("{V}", "{A}", "{N}", "{num}", "{cjk}")):
            break
    return out


def fresh(rng):
    r = rng.random()
    if r < 0.04:
        return fill(rng, rng.choice(SPECIAL))
    if r < 0.05:
        # long instruction: several frames (> 64 tokens, sometimes > 200)
        parts = [fill(rng, rng.choice(FRAMES)) for _ in range(rng.randint(8, 30))]
        return " ".join(parts)
    text = fill(rng, rng.choice(FRAMES))
    if rng.random() < 0.4:
        pre = fill(rng, rng.choice(PREFIXES))
        text = pre + text[0].lower() + text[1:]
    if rng.random() < 0.5:
        text += fill(rng, rng.choice(SUFFIXES))
    return text


def perturb(rng, text):
    words = text.split(" ")
    for _ in range(rng.randint(1, 3)):
        op = rng.random()
        i = rng.randrange(len(words))
        if op < 0.2 and len(words) > 1:
            j = min(i + 1, len(words) - 1)
            words[i], words[j] = words[j], words[i]
        elif op < 0.4:
            words.insert(i, rng.choice(FUNCTION_FILLERS))
        elif op < 0.55 and len(words) > 3:
            del words[i]
        elif op < 0.75:
            w = words[i].lower().strip(".,?!")
            words[i] = SYNONYMS.get(w, rng.choice(NOUNS + ADJS))
        elif op < 0.85:
            words[i] = words[i].rstrip(".?!") + rng.choice([".", "!", "?", ";", ""])
        else:
            words[i] = words[i].upper() if rng.random() < 0.5 else words[i].lower()
    return " ".join(words)


def generate(n, seed, dup_share=0.2):
    """n instructions; about dup_share of them are near or exact duplicates of earlier ones."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        if out and rng.random() < dup_share:
            src = out[rng.randrange(len(out))]
            out.append(src if rng.random() < 0.1 else perturb(rng, src))
        else:
            out.append(fresh(rng))
    return out


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    seed = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    for text in generate(n, seed):
        print(json.dumps({"instruction": text}, ensure_ascii=False))
