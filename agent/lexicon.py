"""The verb and noun lexicon: deterministic signals that keep classification from hinging on
embeddings alone. Multi-word phrases are matched before single words.

Verbs map operator words to canonical verbs; a playbook's verbs are read from its own intent, title
and utterances with the same table, so new playbooks need no code change.
"""

from __future__ import annotations

import re

from rapidfuzz.distance import DamerauLevenshtein

from agent.text import normalise, stem

_WORD = re.compile(r"[a-z0-9]+|[^a-z0-9\s]")

VERBS: dict[str, tuple[str, ...]] = {
    "stop": ("stop", "stpo", "halt", "shut down", "shutdown", "shut off", "turn off", "power down", "power off", "pause", "park"),
    "start": ("start", "boot", "turn on", "power on", "bring up", "bring back", "spin up", "wake", "resume the instance",
              "back online", "bring online", "start up", "startup", "fire up"),
    "reboot": ("reboot", "restart", "bounce", "power cycle", "cycle", "reset"),
    "failover": ("failover", "fail over", "fail-over", "switch over", "switchover", "force failover", "promote the standby"),
    "snapshot": ("snapshot", "snap", "back up", "backup", "checkpoint"),
    "image": ("image", "ami", "create image", "bake"),
    "modify": ("resize", "modify", "change the instance class", "change class", "instance class", "upgrade", "downsize",
               "upsize", "scale up", "scale down", "move to", "switch to", "bump up"),
    "delete": ("delete", "remove", "drop", "destroy", "nuke", "get rid of", "decommission", "tear down", "rm"),
    "terminate": ("terminate", "kill", "destroy", "nuke", "get rid of"),
    "describe": ("describe", "show", "details", "detail", "info", "information", "status", "what is", "what's",
                 "inspect", "check", "look at", "tell me about", "config", "configuration", "settings", "get"),
    "list": ("list", "ls", "contents", "what's in", "what is in", "browse", "enumerate", "files", "objects", "keys"),
    "enable": ("enable", "turn on", "activate", "switch on", "re-enable", "reenable"),
    "suspend": ("suspend", "disable", "pause", "freeze", "turn off", "switch off"),
    "resume": ("resume", "unsuspend", "unfreeze", "re-enable", "reenable"),
    "versioning": ("versioning", "versions", "versioned"),
    "block_public": ("block public", "public access", "make private", "lock down", "private", "wide open", "public"),
    "invoke": ("invoke", "trigger", "execute", "call", "fire", "run", "kick off"),
    "set": ("set", "change", "update", "adjust", "increase", "decrease", "raise", "lower", "bump", "configure", "cap",
            "limit"),
    "concurrency": ("concurrency", "reserved concurrency", "throttle"),
    "pitr": ("point in time", "point-in-time", "pitr", "continuous backups"),
    "purge": ("purge", "clear", "empty", "flush", "drain", "wipe"),
    "attributes": ("attributes", "attribute", "visibility timeout", "message count", "depth"),
    "visibility": ("visibility timeout", "visibility"),
    "scale": ("scale", "scale up", "scale down", "desired capacity", "desired count", "capacity", "set desired", "scale out", "scale in",
              "number of instances", "tasks", "count"),
    "refresh": ("instance refresh", "refresh", "roll", "rolling replace", "replace instances"),
    "redeploy": ("force new deployment", "new deployment", "redeploy", "re-deploy", "deployment", "deploy", "roll",
                 "restart the tasks", "recycle"),
    "health": ("target health", "health", "healthy", "unhealthy", "targets"),
    "publish": ("publish", "send", "notify", "broadcast", "post", "announce"),
    "subscriptions": ("subscriptions", "subscribers", "subscribed"),
    "subscribe": ("subscribe", "sign up"),
    "remove": ("remove", "unset", "clear", "delete"),
}

# Nouns that point at resource types (the prompt's "database", "bucket", ...).
TYPE_NOUNS: dict[str, tuple[str, ...]] = {
    "rds_db_instance": ("database", "db", "rds", "postgres", "postgresql", "mysql", "mariadb", "oracle", "sql server",
                        "db instance", "pg"),
    "rds_db_cluster": ("aurora", "db cluster", "database cluster", "rds cluster", "cluster"),
    "ec2_instance": ("instance", "ec2", "server", "host", "vm", "machine", "box", "node", "bastion"),
    "ec2_volume": ("volume", "ebs", "disk"),
    "s3_bucket": ("bucket", "s3"),
    "lambda_function": ("function", "lambda", "fn"),
    "dynamodb_table": ("table", "dynamodb", "dynamo", "ddb"),
    "ecs_cluster": ("ecs cluster", "cluster"),
    "ecs_service": ("ecs", "service", "fargate", "tasks", "containers"),
    "elbv2_load_balancer": ("load balancer", "alb", "nlb", "elb", "loadbalancer"),
    "elbv2_target_group": ("target group", "tg", "targets"),
    "autoscaling_group": ("asg", "auto scaling group", "autoscaling group", "auto scaling", "autoscaling", "scaling group", "fleet"),
    "sqs_queue": ("queue", "sqs"),
    "sns_topic": ("topic", "sns"),
    "eks_cluster": ("eks", "kubernetes", "k8s", "cluster"),
    "cloudformation_stack": ("stack", "cloudformation", "cfn"),
    "iam_role": ("role", "iam"),
}


# Services outside the catalogue, by the words operators use for them: naming one is out of scope, whatever
# verb comes with it ("delete the eventbridge rule" is not elbv2 DeleteRule).
FOREIGN_SERVICES = frozenset("""cloudfront route53 redshift cognito eventbridge cloudwatch kinesis firehose guardduty
athena efs ses sesv2 ecr opensearch elasticsearch elasticache stepfunctions sagemaker secretsmanager ssm sts
organizations cloudtrail waf wafv2 shield acm apigateway appsync amplify beanstalk elasticbeanstalk lightsail emr msk
kafka datasync workspaces quicksight macie inspector securityhub xray codebuild codedeploy codepipeline codecommit
heroku gcp azure bedrock textract rekognition comprehend polly transcribe memorydb keyspaces timestream fsx
storagegateway directconnect dms snowball outposts greengrass glue""".split())
FOREIGN_PHRASES = re.compile(r"(?<![\w-])(?:step[- ]functions?|secrets?[- ]manager|parameter[- ]store|systems[- ]manager"
                              r"|api[- ]gateway|elastic[- ]beanstalk|cost[- ]explorer|aws[- ]backup|backup[- ]plans?"
                              r"|certificate[- ]manager|security[- ]hub|cloud[- ]watch|cloud[- ]front|route[- ]53"
                              r"|session[- ]manager|event[- ]bridge|x[- ]ray|lake[- ]formation|control[- ]tower"
                              r"|identity[- ]center|single[- ]sign[- ]on|sso)(?![\w-])")
# "the volume attached to build-1", "the disk mounted on db-2": a resource said by what it is linked to. The
# planner's part reading (agent.mentions), the catalogue's verb reading (agent.catalogue_match: no verb
# "attach") and the search's related reading (app.estate.lookup) build their patterns from this one tuple,
# each adding its own extras.
LINK_PHRASES: tuple[str, ...] = ("attached to", "mounted on", "connected to")


def phrase_alternation(phrases: tuple[str, ...]) -> str:
    """A non-capturing regex alternation of ``phrases`` in the order given, any whitespace between their
    words: one table renders the same phrases in every pattern that reads them."""
    return "(?:" + "|".join(r"\s+".join(map(re.escape, p.split())) for p in phrases) + ")"


# "the fifo queue that isn't the dlq", "every instance in staging except web-1", "instances that aren't running",
# "every queue except the prod ones", "all buckets except those in oregon": a word (a name or a part of one, a
# state, an environment, a region or place, an account) the resources meant must not carry. A tag expression's
# own negation is not one ("but not app=main"), nor a link ("volumes that aren't attached to anything").
EXCLUSION = re.compile(r"[\s,]*\b(?:(?:that|which)\s+(?:isn't|isnt|is\s+not|aren't|arent|are\s+not)|except(?:\s+for)?|"
                       r"excluding|but\s+not|other\s+than|apart\s+from)\s+"
                       r"(?:(?:those|these|the\s+ones|ones|any)\s+(?=(?:in|on|from|at)\s))?"
                       r"(?:(?:in|on|from|at)\s+)?(?:the\s+|a\s+|an\s+|any\s+)?"
                       r"(?P<word>[a-z0-9][\w.-]*)(?![\w.-])(?!\s*!?=)(?:\s+ones?\b)?", re.IGNORECASE)
# A name left out in passing, where the words before it are too common to take any word after them: "stop
# pg-1, not pg-2", "all databases but pg-2", "without web-2", "leave web-2 running", "keep web-2 up", "skip
# web-2", "don't touch web-2", "don't stop web-2". Only a name-shaped word (a dash, underscore, dot or digit
# among letters) counts: "without a final snapshot" and "keep the logs" are options, not exclusions.
_NAME_SHAPED = r"(?=[\w.-]*[a-z])(?=[\w.-]*[-_.0-9])[a-z0-9][\w.-]*"
_NAME_LEFT_OUT = re.compile(r"(?:[\s,]*\b(?:and\s+|but\s+)?not|,?\s*\bbut|\bwithout|\b(?:leave|keep|skip|spare|ignore)|"
                            r"\b(?:don't|dont|do\s+not|never)(?:\s+[a-z]+)?)\s+(?:the\s+)?(?P<word>" + _NAME_SHAPED + r")(?![\w.-])"
                            r"(?:\s+(?:running|up|alone|untouched|intact|as\s+it\s+is|as\s+is)\b)?", re.IGNORECASE)
_NOT_EXCLUDABLE = frozenset("in on at from for of to by with attached mounted connected used".split())
# Words that leave out something without saying what ("every instance except those"): a change asks.
VAGUE_EXCLUSIONS = frozenset("those these them ones one it that this others other everything all some".split())


def exclusions(text: str) -> list[tuple[int, int, str]]:
    """The exclusion phrases of ``text``: (start, end, excluded word lowercased, without a final dot)."""
    found = []
    for match in EXCLUSION.finditer(text):
        word = match.group("word").lower().rstrip(".")
        if word and word not in _NOT_EXCLUDABLE:
            found.append((match.start(), match.end(), word))
    # "is web-1 not running?" asks about web-1's state; it leaves nothing out.
    yes_no = re.match(r"\s*(?:is|are|was|were|does|do|did|has|have|can|could)\s+(?!any\b|all\b|there\b|some\b)",
                      text, re.IGNORECASE)
    for pattern in ((_NAME_LEFT_OUT,) if yes_no else (_NEGATED_STATE, _NEGATED_PLACE, _NAME_LEFT_OUT)):
        for match in pattern.finditer(text):
            if not any(start <= match.start("word") < end for start, end, _ in found):
                found.append((match.start(), match.end(), match.group("word").lower().rstrip(".")))
    return sorted(found)


def carries_word(name: str, word: str) -> bool:
    """Whether ``word`` is ``name`` or a dash/dot/underscore-delimited part of it ("dlq" in
    "purchase-events-dlq.fifo", "web-1" in "web-1"), case-insensitively."""
    return re.search(r"(?<![a-z0-9])" + re.escape(word.lower()) + r"(?![a-z0-9])", name.lower()) is not None


# -- where, which environment, what state: the word tables every stage reads (agent.prompt parses with them)

# Place names operators use for regions; a value ending in "-" is a prefix (every region starting with it).
# Longer phrases first where one contains another ("n. virginia" before "virginia").
REGION_WORDS: dict[str, str] = {
    "northern virginia": "us-east-1", "north virginia": "us-east-1", "n. virginia": "us-east-1",
    "n virginia": "us-east-1", "northern california": "us-west-1", "n. california": "us-west-1",
    "europe": "eu-", "eu": "eu-", "ireland": "eu-west-1", "london": "eu-west-2", "paris": "eu-west-3",
    "frankfurt": "eu-central-1", "stockholm": "eu-north-1", "milan": "eu-south-1", "virginia": "us-east-1",
    "ohio": "us-east-2", "oregon": "us-west-2", "california": "us-west-1", "tokyo": "ap-northeast-1",
    "seoul": "ap-northeast-2", "osaka": "ap-northeast-3", "singapore": "ap-southeast-1", "sydney": "ap-southeast-2",
    "mumbai": "ap-south-1", "hong kong": "ap-east-1", "asia": "ap-", "canada": "ca-", "montreal": "ca-central-1",
    "brazil": "sa-east-1", "sao paulo": "sa-east-1", "japan": "ap-northeast-1", "korea": "ap-northeast-2",
    "india": "ap-south-1", "hyderabad": "ap-south-2", "jakarta": "ap-southeast-3", "indonesia": "ap-southeast-3",
    "melbourne": "ap-southeast-4", "australia": "ap-southeast-2", "sweden": "eu-north-1", "italy": "eu-south-1",
    "spain": "eu-south-2", "zurich": "eu-central-2", "switzerland": "eu-central-2", "germany": "eu-central-1",
    "uk": "eu-west-2", "united kingdom": "eu-west-2", "france": "eu-west-3", "uae": "me-central-1",
    "dubai": "me-central-1", "bahrain": "me-south-1", "middle east": "me-", "tel aviv": "il-central-1",
    "israel": "il-central-1", "cape town": "af-south-1", "south africa": "af-south-1", "africa": "af-",
    "calgary": "ca-west-1", "south america": "sa-",
}
# AWS's short region codes as operators type them: usw2, use1, euc1, apse2 (also us-w2).
SHORT_REGION = re.compile(r"(?<![\w.-])(us|eu|ap|ca|sa|me|af|il)-?(ne|se|nw|sw|e|w|n|s|c)-?(\d)(?![\w-])")
SHORT_DIRECTIONS = {"e": "east", "w": "west", "n": "north", "s": "south", "c": "central", "ne": "northeast",
                    "se": "southeast", "nw": "northwest", "sw": "southwest"}
# Environment words -> the environment they name. Tags compare through app.estate.tagexpr's synonyms; an
# account whose name is one of these is also named by the others (prod -> the "production" account).
ENVIRONMENT_WORDS: dict[str, str] = {
    "production": "production", "prod": "production", "prd": "production", "live": "production",
    "staging": "staging", "stage": "staging", "stg": "staging",
    "development": "development", "dev": "development",
    "nonprod": "nonprod", "non-prod": "nonprod",
}
# "live" says production of a tag ("the live database"), but is too common a word to name an account by.
NOT_ACCOUNT_ALIASES = frozenset({"live"})
# Database engine words -> what the engine's name contains ("postgres" in aurora-postgresql).
ENGINE_WORDS: dict[str, str] = {"postgres": "postgres", "postgresql": "postgres", "pg": "postgres", "mysql": "mysql",
                                "mariadb": "mariadb",
                                "oracle": "oracle", "sql server": "sqlserver", "sqlserver": "sqlserver"}
# State words -> the state a document records ("idle" instances are stopped ones).
STATE_WORDS: dict[str, str] = {"stopped": "stopped", "running": "running", "available": "available",
                               "idle": "stopped", "unattached": "available", "failed": "failed"}
# "which instances aren't running?", "which queues aren't in production?", "buckets outside europe": a state or
# a place said with a negation is one the resources must not be in.
_NEGATED_STATE = re.compile(r"[\s,]*\b(?:isn't|isnt|is\s+not|aren't|arent|are\s+not|not)\s+(?:currently\s+|yet\s+)?"
                            r"(?P<word>" + "|".join(sorted(STATE_WORDS, key=len, reverse=True)) + r")\b", re.IGNORECASE)
_NEGATED_PLACE = re.compile(r"[\s,]*(?:\b(?:isn't|isnt|is\s+not|aren't|arent|are\s+not|not)\s+(?:in|on|from|at)|\boutside(?:\s+of)?)"
                            r"\s+(?:the\s+)?(?P<word>[a-z0-9][\w.-]*)(?![\w.-])(?:\s+(?:account|region|environment)\b)?",
                            re.IGNORECASE)


def canonical(text: str) -> str:
    """Lowercase, NFKC, each word stemmed, punctuation kept as separate tokens: what patterns match."""
    return " ".join(stem(w) if w[0].isalnum() else w for w in _WORD.findall(normalise(text)))


def _pattern(phrases: tuple[str, ...]) -> re.Pattern[str]:
    ordered = sorted({canonical(p) for p in phrases}, key=len, reverse=True)
    return re.compile(r"(?<![a-z0-9])(" + "|".join(re.escape(p) for p in ordered) + r")(?![a-z0-9])")


def plural_noun(noun: str) -> str:
    """"database" -> "databases", "box" -> "boxes" (the last word of a phrase: "db instances")."""
    return noun + ("es" if noun.endswith(("s", "x", "sh", "ch")) else "s")



_VERB_PATTERNS = {verb: _pattern(words) for verb, words in VERBS.items()}
# Plurals too: the stemmer makes "databases" "databas" and "instances" "instanc", which the singular's
# pattern ("database", "instance") does not match.
_NOUN_PATTERNS = {rtype: _pattern(tuple(words) + tuple(plural_noun(w) for w in words)) for rtype, words in TYPE_NOUNS.items()}


# "start it back up" is not a backup; "bring it back online" is a start.
_BACK_UP_AFTER_START = re.compile(r"\b(start|bring|spin|power|turn)\b(.{0,60}?)\bback up\b")
_VERB_WORDS = sorted({canonical(w) for words in VERBS.values() for w in words if " " not in canonical(w) and len(w) >= 4})
# Real words one letter away from a verb that must not be "corrected" into it.
_VERB_SET = frozenset(_VERB_WORDS)
_NOT_TYPOS = frozenset({"step", "lost", "last", "star", "test", "state", "stat", "clean", "sync", "lest", "best", "most",
                        "post", "host", "show", "slow", "snap", "stage", "store", "shot", "boat", "bold", "call", "cold",
                        "kill", "fill", "will", "till", "tell", "still", "start", "sort", "port", "part", "past",
                        "cost", "costs", "list", "drop", "prod", "stack", "stock", "check", "chunk", "reset", "resets",
                        "rest", "root", "boot", "book", "look", "load", "lead", "read", "ready", "real", "ream"})
# Phrasal verbs with their object inside: "shut it down" -> "shut down it".
_SPLIT_PHRASAL = re.compile(r"\b(shut|turn|power|bring|spin|back|tear|scale|wind|switch|lock|fire|kick)\s+((?:[\w-]+\s+){0,2}?[\w-]+)\s+"
                            r"(down|off|on|up|out|in)\b")
_QUESTION = re.compile(r"^\s*(what|which|who|how|is|are|does|do|any|when|where|why)\b|\?\s*$")
# "can someone bounce it?" and "could versioning be switched on?" are requests, not questions.
_POLITE_REQUEST = re.compile(r"\b(can|could|would|will|pls|please)\b")
# An instance class in the prompt ("to db.r6g.4xlarge", "to m5.large") means a resize.
_INSTANCE_CLASS = re.compile(r"(?<![\w.])(db\.[a-z0-9]+\.[a-z0-9]+|[a-z][a-z0-9-]*\d[a-z0-9-]*\.(?:nano|micro|small|medium|"
                             r"large|xlarge|\d+xlarge|metal))(?![\w])")


def correct_typos(text: str, vocabulary: frozenset[str] = frozenset()) -> str:
    """Fix one-letter slips in verbs ("strat" -> "start", "rebot" -> "reboot", "snaphsot" -> "snapshot").

    Only unknown words of four letters or more are touched, and only towards a verb of the lexicon at
    Damerau-Levenshtein distance 1 (2 for long words): names and ordinary words stay as they are.
    """
    def fix(match: re.Match[str]) -> str:
        word = match.group(0)
        if (len(word) < 4 or word in _NOT_TYPOS or word in vocabulary or stem(word) in vocabulary
                or stem(word) in _VERB_SET or word.isdigit()):
            return word
        limit = 2 if len(word) >= 8 else 1
        best = min(_VERB_WORDS, key=lambda v: DamerauLevenshtein.distance(word, v))
        return best if DamerauLevenshtein.distance(word, best) <= limit else word

    return re.sub(r"(?<![\w-])[a-z]+(?![\w-])", fix, normalise(text))


# "<the resource> back up" is "up again", not a backup ("we need transcoder-10 back up").
_NOUN_BACK_UP = re.compile(r"\b(" + "|".join(sorted({w for ws in TYPE_NOUNS.values() for w in ws if " " not in w}))
                           + r"|it|them)\s+back up\b")


# "list all instances in oregon", "enumerate the databases in staging", "ls lambdas": listing resources of
# a type is describing them (the describe playbooks take every target the lookup found), not the "list" of
# a bucket's objects or a topic's subscriptions. Buckets have no describing playbook, and "targets" and
# "tasks" name parts of other resources, so they are left out.
_LISTED_NOUNS = {n for rtype, nouns in TYPE_NOUNS.items() if rtype != "s3_bucket" for n in nouns
                 if n not in ("targets", "tasks", "containers", "fleet", "s3")}
_LISTED_SINGULARS = sorted(_LISTED_NOUNS, key=len, reverse=True)
_LISTED_PLURALS = sorted({plural_noun(n) for n in _LISTED_NOUNS}
                         | {"dbs", "lambdas", "asgs", "albs", "nlbs", "elbs", "vms", "ec2s", "rds instances"},
                         key=len, reverse=True)
_LIST_WORDS = r"\b(?:list|ls|enumerate|inventory of|inventory|show)\s+(?:me\s+)?"
_QUANTIFIERS = r"(?:(?:all|every|each|the|our|my|of|any|current|existing)\s+)*"
# Up to two words between ("ec2", "running", "env=dev"), but never what lives inside a resource.
_BETWEEN = r"(?:(?!(?:subscriptions?|objects?|files?|keys?|contents?|versions?|messages?)\b)[\w.=-]+\s+){0,2}?"
_STATE_ADJECTIVES = re.compile(r"(?<![\w-])(?:stopped|running|started|starting|stopping|idle|available|pending)(?![\w-])")
_FLEET_LISTING = re.compile(
    _LIST_WORDS + "(?:" + _QUANTIFIERS + _BETWEEN + "(?:" + "|".join(map(re.escape, _LISTED_PLURALS)) + ")"
    + r"|(?:all|every|each)\s+" + _BETWEEN + "(?:" + "|".join(map(re.escape, _LISTED_SINGULARS)) + r"))\b")


def lists_resources(text: str) -> bool:
    """Does ``text`` ask to list the resources of a type ("list all instances in oregon")?"""
    return bool(_FLEET_LISTING.search(normalise(text)))


def ordered_verbs(text: str) -> list[str]:
    """Canonical verbs in the order they first occur; a question puts "describe" first, and so does a
    request to list resources of a type (``_FLEET_LISTING``).

    A word inside a longer phrase of another verb does not count ("fire up" is a start, not an invoke).
    """
    raw = normalise(text)
    listing = _FLEET_LISTING.search(raw)
    # In a listing, "stopped" and "running" say which resources, not what to do with them.
    low = _STATE_ADJECTIVES.sub(" ", raw) if listing else raw
    low = _NOUN_BACK_UP.sub(r"\1 back online", low)
    low = _BACK_UP_AFTER_START.sub(r"\1\2 up", low)
    low = canonical(_SPLIT_PHRASAL.sub(r"\1 \3 \2", low))
    found: list[tuple[int, int, str]] = []
    for verb, pattern in _VERB_PATTERNS.items():
        for match in pattern.finditer(low):
            found.append((match.start(), match.end(), verb))
    kept = [f for f in found if not any(o[2] != f[2] and o[0] <= f[0] and f[1] <= o[1] and (o[1] - o[0]) > (f[1] - f[0])
                                        for o in found)]
    verbs: list[str] = []
    if listing or _QUESTION.search(raw) and not _POLITE_REQUEST.search(raw):
        verbs.append("describe")
    for _, _, verb in sorted(kept):
        if verb not in verbs and not (listing and verb == "list"):
            verbs.append(verb)
    if _INSTANCE_CLASS.search(raw) and "modify" not in verbs:
        verbs.append("modify")
    return verbs


# Where one request ends and another may begin: "take a final snapshot of X and delete it", "stop X, then
# resize it". Not inside a name ("before-upgrade", "sales-and-marketing").
_CLAUSE_BREAK = re.compile(r"[,;]|(?<![\w-])(?:and then|and|then|after that|afterwards|also)(?![\w-])")
_CLAUSE_FILLERS = re.compile(r"^(?:(?:please|pls|kindly|just|now|finally|first|immediately|go ahead and|and|then|"
                             r"(?:can|could|would|will) (?:you|someone|we)|(?:i|we) (?:need|want|have) to|"
                             r"i'?d like to|we'?d like to|let'?s|lets)\s+)*")
# A later clause asks for something only when it is an imperative: it opens with a verb ("delete it"), or
# with a light verb before one ("take a snapshot", "create an image"). "it's empty now", "someone suspended
# it", "new AMI is out" and "the plugin upgrade" describe; they ask for nothing.
_LIGHT_VERBS = frozenset({"take", "create", "make", "grab", "do", "run", "kick", "issue"})
# Words that open a verb phrase of VERBS and are verbs themselves (not "new deployment", "public access").
_NOT_VERBS = frozenset({"ami", "attribute", "attributes", "backup", "capacity", "concurrency", "config", "configuration",
                        "contents", "continuous", "count", "deployment", "depth", "desired", "detail", "details",
                        "files", "health", "healthy", "image", "info", "information", "instance", "keys", "message",
                        "new", "number", "objects", "pitr", "point", "point-in-time", "private", "public", "reserved",
                        "rolling", "settings", "status", "subscribed", "subscribers", "subscriptions", "target",
                        "targets", "tasks", "unhealthy", "versioned", "versioning", "versions", "visibility", "what",
                        "what's", "wide", "snap", "back"})
_VERB_STARTERS = frozenset(w.split()[0] for words in VERBS.values() for w in words) - _NOT_VERBS | _LIGHT_VERBS
_NEGATED_CLAUSE = re.compile(r"\b(?:don'?t|do not|never|without|not|no need to|instead of|rather than)\b")


def imperative_verbs(clause: str, values: frozenset[str] = frozenset()) -> list[str]:
    """The verbs a clause asks for when it is an imperative, else []. ``values``: words the prompt wrote
    capitalised mid-sentence ("resume Launch and Terminate"), names of things rather than verbs."""
    text = _CLAUSE_FILLERS.sub("", clause.strip())
    words = text.split()
    if not words or words[0] not in _VERB_STARTERS or words[0] in values or _NEGATED_CLAUSE.search(text):
        return []
    if len(words) > 1 and words[1].startswith("-"):
        return []  # "rm -rf /": shell, not a request (it is never run either: argv comes from the plan)
    return ordered_verbs(" ".join(words[:6 if words[0] in _LIGHT_VERBS else 4]))


def clause_verbs(text: str, values: frozenset[str] = frozenset()) -> list[list[str]]:
    """The verbs each clause of ``text`` (see ``_CLAUSE_BREAK``) asks for: a clause that is no imperative
    ("X is empty now, delete the bucket") asks for nothing (``imperative_verbs``)."""
    return [imperative_verbs(c, values) for c in _CLAUSE_BREAK.split(normalise(text)) if c.strip()]


def verbs_in(text: str) -> set[str]:
    """Canonical verbs whose words occur in ``text``. A question asks to describe."""
    return set(ordered_verbs(text))


def types_in(text: str) -> set[str]:
    """Resource types the words of ``text`` point at."""
    low = canonical(text)
    return {rtype for rtype, pattern in _NOUN_PATTERNS.items() if pattern.search(low)}


def head_types(text: str) -> set[str]:
    """The types of the first type noun in ``text``: the head of "lambda that rotates the database
    password" is the lambda, not the database."""
    low = canonical(text)
    found = [(m.start(), -(m.end() - m.start()), rtype) for rtype, pattern in _NOUN_PATTERNS.items()
             for m in [pattern.search(low)] if m]
    if not found:
        return set()
    first = min(found)[:2]
    return {rtype for start, length, rtype in found if (start, length) == first}
