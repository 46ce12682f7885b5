"""Which catalogue operation a prompt asks for, or that none does.

The rule that makes this honest: a verb alone never picks an operation. An entry is a candidate only when
the prompt's verb is one of the entry's API verbs (``delete`` -> Delete, Deregister, Remove, ...) AND the
object the prompt names agrees with the entry's object: every word of the entry's head ("event
subscription" of DeleteEventSubscription) is in the prompt, said directly, through a synonym ("database" ->
db, "elastic ip" -> address), through a named resource's type (pg-instance-main1 -> db instance), or through
an id's shape (sg-0123... -> security group). Among candidates the one that explains most of what the
prompt names wins ("instance status" -> DescribeInstanceStatus, not DescribeInstances); a tie between two
different calls is a question; no candidate is "I have no operation for ...".

The same analysis judges a reviewed playbook's match (``object_agrees``): "delete an event subscription"
names an object that DeleteDBInstance's playbook does not own, so the playbook is not planned on a verb
match.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from functools import lru_cache
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from botocore import xform_name

from agent.catalogue import _PREPOSITIONS, CatalogueEntry
from agent.lexicon import FOREIGN_PHRASES, FOREIGN_SERVICES, LINK_PHRASES, phrase_alternation
from agent.text import normalise, singular, stem

# ---------------------------------------------------------------------------------------------- words
# Phrases read as one object word, on both sides (the prompt and the API names).
_PHRASES: list[tuple[re.Pattern[str], str]] = [(re.compile(r"(?<![\w-])" + p + r"(?![\w-])"), r) for p, r in [
    (r"time[- ]to[- ]live", "ttl"), (r"point[- ]in[- ]time[- ]recovery|pitr", "continuous backup"),
    (r"point[- ]in[- ]time", "pitr"), (r"node[- ]groups?", "nodegroup"),
    (r"add[- ]ons?", "addon"), (r"elastic[- ]ips?(?:[- ]address(?:es)?)?", "address"), (r"eips?", "address"),
    (r"public[- ]ips?", "address"), (r"ip[- ]address(?:es)?", "address"), (r"amis?", "image"),
    (r"lambdas|lambda[- ]functions?", "function"),
    (r"sgs?", "security group"), (r"(?:albs?|nlbs?|elbs?|elbv2|lbs?)", "load balancer"), (r"tgs?", "target group"),
    (r"asgs?|auto[- ]?scaling[- ]groups?|scaling[- ]groups?", "autoscaling group"), (r"auto[- ]scaling", "autoscaling"),
    (r"(?:un)?health(?:y|iness)", "health"),
    (r"databases?|dbs", "db"), (r"configs?", "configuration"), (r"inbound", "ingress"), (r"outbound", "egress"),
    (r"dlqs?|dead[- ]letter[- ]queues?", "dead letter queue"), (r"vms?|ec2[- ]instances?", "instance"),
    (r"ebs[- ]volumes?|disks?", "volume"), (r"env(?:ironment)?[- ]variables?|env[- ]vars?", "environment"),
    (r"k8s|kubernetes", "kubernetes"), (r"multi[- ]az", "multiaz"), (r"log[- ]files?", "log file"),
    (r"key[- ]?pairs?", "key pair"), (r"access[- ]keys?", "access key"), (r"cidr[- ]blocks?", "cidr block"),
    (r"read[- ]replicas?", "read replica"), (r"task[- ]defs?", "task definition"), (r"tagging", "tag"),
    (r"(?:of|in|for|on|across)\s+(?:the|this|our|my|your)\s+(?:aws\s+)?account", " "),
    (r"(?:in|on|for|from)\s+(?:the\s+)?(?:aws\s+)?(?:account|acct)(?=\s|$)", " "),
    (r"subscribers?|subscribed", "subscription"),
]]
# Words that stand for an object without naming a different one: an API name's generic words
# (UpdateFunctionConfiguration, ModifyInstanceAttribute) need not be said when the prompt names the rest.
GENERIC = frozenset({"configuration", "attribute", "setting", "detail", "info", "information", "property",
                     "metadata", "description", "resource"})
_GENERIC_STEMS = frozenset(stem(w) for w in GENERIC)
# What a question asks about a resource's state ("is X healthy?"): answered by describing it, never an
# object of its own.
STATE_WORDS = frozenset({"health", "state", "status", "running", "up", "down", "alive", "ok", "working", "available",
                         "broken", "stuck", "busy", "idle", "online", "offline", "fine", "current"})
# Service words: which service they point at, and the object words they imply for it.
SERVICE_WORDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "rds": ("rds", ("db",)), "aurora": ("rds", ("db", "cluster")), "postgres": ("rds", ("db",)),
    "postgresql": ("rds", ("db",)), "mysql": ("rds", ("db",)), "mariadb": ("rds", ("db",)),
    "ec2": ("ec2", ()), "ebs": ("ec2", ("ebs",)), "s3": ("s3", ("bucket",)), "dynamodb": ("dynamodb", ("table",)),
    "dynamo": ("dynamodb", ("table",)), "ddb": ("dynamodb", ("table",)), "ecs": ("ecs", ()),
    "eks": ("eks", ("cluster",)), "kubernetes": ("eks", ("cluster",)),
    "sqs": ("sqs", ("queue",)), "sns": ("sns", ("topic",)), "iam": ("iam", ()), "lambda": ("lambda", ("function",)),
    "cloudformation": ("cloudformation", ("stack",)), "cfn": ("cloudformation", ("stack",)),
    "elbv2": ("elbv2", ()),
}
# Words that pass through the object analysis without naming anything.
_STOP = frozenset("""a an the of for to in on at my our your this that these those it its and or please pls can could
would will you i me we us is are be been with from by all every each any some new existing current currently
there here now then also just only so do does did have has had what which who whom how when where why whats
as into onto over under up down out off about via per than if else not no yes let lets want need like give
tell show list get one two three four five six seven eight nine ten first last latest recent most more few many
way thing things stuff kind sort please thanks thank called named name using use used same other another own
since ago day days week weeks month months hour hours minute minutes second seconds today tomorrow yesterday
night morning evening their his her them they whole entire currently right away asap quick quickly real
really just actually maybe probably""".split())
# What an id's shape says it names.
_ID_OBJECTS: list[tuple[re.Pattern[str], tuple[str, ...], str]] = [
    (re.compile(r"^sg-[0-9a-f]{8,17}$"), ("security", "group"), "ec2"),
    (re.compile(r"^ami-[0-9a-f]{8,17}$"), ("image",), "ec2"),
    (re.compile(r"^snap-[0-9a-f]{8,17}$"), ("snapshot",), "ec2"),
    (re.compile(r"^vol-[0-9a-f]{8,17}$"), ("volume",), "ec2"),
    (re.compile(r"^i-[0-9a-f]{8,17}$"), ("instance",), "ec2"),
    (re.compile(r"^eipalloc-[0-9a-f]{8,17}$"), ("address",), "ec2"),
    (re.compile(r"^eni-[0-9a-f]{8,17}$"), ("network", "interface"), "ec2"),
    (re.compile(r"^subnet-[0-9a-f]{8,17}$"), ("subnet",), "ec2"),
    (re.compile(r"^vpc-[0-9a-f]{8,17}$"), ("vpc",), "ec2"),
    (re.compile(r"^igw-[0-9a-f]{8,17}$"), ("internet", "gateway"), "ec2"),
    (re.compile(r"^nat-[0-9a-f]{8,17}$"), ("nat", "gateway"), "ec2"),
    (re.compile(r"^rtb-[0-9a-f]{8,17}$"), ("route", "table"), "ec2"),
    (re.compile(r"^lt-[0-9a-f]{8,17}$"), ("launch", "template"), "ec2"),
    (re.compile(r"^sir-[0-9a-z]{8}$"), ("spot", "instance", "request"), "ec2"),
    (re.compile(r"^pcx-[0-9a-f]{8,17}$"), ("vpc", "peering", "connection"), "ec2"),
    (re.compile(r"^acl-[0-9a-f]{8,17}$"), ("network", "acl"), "ec2"),
]
_ARN = re.compile(r"^arn:aws[a-z-]*:([a-z0-9-]+):")
_ARN_SERVICE = {"elasticloadbalancing": "elbv2"}

# What a resource the prompt names says about the object (its type, as API-name words).
TYPE_OBJECTS: dict[str, tuple[str, ...]] = {
    "rds_db_instance": ("db", "instance"), "rds_db_cluster": ("db", "cluster"), "ec2_instance": ("instance",),
    "ec2_volume": ("volume",), "s3_bucket": ("bucket",), "lambda_function": ("function",),
    "dynamodb_table": ("table",), "ecs_cluster": ("cluster",), "ecs_service": ("service",),
    "elbv2_load_balancer": ("load", "balancer"), "elbv2_target_group": ("target", "group"),
    "autoscaling_group": ("autoscaling", "group"), "sqs_queue": ("queue",), "sns_topic": ("topic",),
    "eks_cluster": ("cluster",), "cloudformation_stack": ("stack",), "iam_role": ("role",),
}

# ---------------------------------------------------------------------------------------------- verbs
_READ = ("describe", "get", "list", "head", "search", "lookup")
_CREATE = ("create", "allocate", "add", "put", "run", "request", "register", "generate", "import", "copy")
_CHANGE = ("modify", "update", "set", "put", "change", "replace", "reset")
_DELETE = ("delete", "batch", "deregister", "remove", "release", "terminate", "deprovision", "detach",
           "disassociate", "revoke", "unassign", "untag")
# Operator verbs (stemmed forms are matched too) -> the API verbs they may mean, preferred first.
VERBS: dict[str, tuple[str, ...]] = {
    **{w: ("describe", "get", "list", "head") for w in ("describe", "show", "display", "view", "see", "print",
                                                        "find", "inspect", "look", "check", "tell", "info")},
    **{w: ("list", "describe", "get") for w in ("list", "ls", "enumerate")},
    **{w: ("get", "describe", "list", "head", "download") for w in ("get", "fetch", "retrieve", "obtain", "grab")},
    **{w: _CREATE for w in ("create", "build", "provision", "setup")},
    "make": (*_CREATE, *_CHANGE),  # "make a snapshot", "make X private"
    "backup": ("create",), "snapshot": ("create",), "redeploy": ("update",), "block": ("put", "enable", "modify", "update"),
    "unblock": ("delete", "disable", "put"), "pull": ("get", "describe", "list", "download"),
    "add": ("add", "create", "attach", "associate", "register", "put", "tag", "authorize", "assign"),
    **{w: _DELETE for w in ("delete", "destroy", "drop", "nuke", "erase", "trash", "deleting")},
    "remove": ("remove", "delete", "detach", "disassociate", "deregister", "untag", "revoke", "unassign", "release"),
    **{w: _CHANGE for w in ("modify", "update", "change", "set", "edit", "adjust", "alter", "configure", "resize",
                            "increase", "decrease", "raise", "lower", "bump", "switch", "convert", "extend",
                            "shrink", "grow", "rename", "reconfigure")},
    **{w: ("update", "modify") for w in ("upgrade", "downgrade", "patch")},
    "scale": ("update", "set", "modify", "put"),
    "enable": ("enable", "activate", "start", "monitor", "update", "modify", "put", "set"),
    "activate": ("activate", "enable", "start"),
    "disable": ("disable", "deactivate", "unmonitor", "stop", "update", "modify", "put", "set"),
    "deactivate": ("deactivate", "disable", "stop"),
    "start": ("start", "run"), "begin": ("start",), "stop": ("stop",), "halt": ("stop",),
    "reboot": ("reboot",), "restart": ("reboot",), "bounce": ("reboot",),
    "terminate": ("terminate",), "kill": ("terminate", "stop"),
    "cancel": ("cancel", "abort", "stop"), "abort": ("abort", "cancel"),
    "restore": ("restore",), "recover": ("restore",),
    "copy": ("copy",), "clone": ("copy", "create"), "duplicate": ("copy",),
    "import": ("import",), "export": ("export",),
    "attach": ("attach", "associate"), "detach": ("detach", "disassociate"),
    "associate": ("associate", "attach"), "link": ("associate", "attach"),
    "disassociate": ("disassociate", "detach"), "unlink": ("disassociate", "detach"),
    "register": ("register",), "enroll": ("register",), "deregister": ("deregister",), "unregister": ("deregister",),
    "accept": ("accept",), "approve": ("accept",), "reject": ("reject",), "decline": ("reject",),
    "authorize": ("authorize",), "allow": ("authorize",), "grant": ("authorize", "add", "put"),
    "revoke": ("revoke",), "disallow": ("revoke",),
    "allocate": ("allocate",), "reserve": ("put", "allocate", "purchase"), "release": ("release",),
    "assign": ("assign",), "unassign": ("unassign",),
    "promote": ("promote",), "failover": ("failover",), "switchover": ("switchover",),
    "publish": ("publish",), "send": ("send", "publish"), "post": ("publish", "send"),
    "invoke": ("invoke",), "trigger": ("invoke",), "call": ("invoke",),
    "run": ("run", "execute", "start", "invoke"), "execute": ("execute", "run", "invoke"),
    "launch": ("run", "create", "start"),
    "purge": ("purge",), "empty": ("purge",), "flush": ("purge",),
    "subscribe": ("subscribe",), "unsubscribe": ("unsubscribe",),
    "reset": ("reset",), "move": ("move", "start"), "purchase": ("purchase",), "buy": ("purchase",),
    "upload": ("upload",), "download": ("download", "get"),
    "lock": ("lock",), "unlock": ("unlock",), "monitor": ("monitor",), "unmonitor": ("unmonitor",),
    "suspend": ("suspend",), "pause": ("suspend", "stop"), "resume": ("resume",), "unpause": ("resume",),
    "validate": ("validate",), "verify": ("verify", "validate"), "estimate": ("estimate",),
    "generate": ("generate", "create"), "detect": ("detect",), "simulate": ("simulate",), "test": ("test",),
    "search": ("search",), "scan": ("scan",), "query": ("query",),
    "receive": ("receive",), "consume": ("receive",), "poll": ("receive",),
    "signal": ("signal",), "apply": ("apply",), "rollback": ("rollback",), "backtrack": ("backtrack",),
    "confirm": ("confirm",), "complete": ("complete",), "finish": ("complete",), "continue": ("continue",),
    "record": ("record",), "deprovision": ("deprovision",), "request": ("request",), "submit": ("submit",),
    "tag": ("tag", "add", "create", "put"), "label": ("tag", "add", "create", "put"),
    "untag": ("untag", "remove", "delete"), "withdraw": ("withdraw",), "advertise": ("advertise",),
    "bundle": ("bundle",), "checkpoint": ("checkpoint",), "resync": ("resync",), "write": ("write", "put"),
    "enter": ("enter",), "exit": ("exit",), "contents": ("list",), "throttle": ("put", "update", "modify"),
}


def _lexicon_verbs() -> None:
    """Operators' words the reviewed playbooks' lexicon knows (agent.lexicon.VERBS: "decommission", "bounce",
    "nuke", "park"), mapped to the API verbs of what they mean; words that also name objects ("image",
    "limit", "cap") are left out."""
    from agent.lexicon import VERBS as LEXICON

    meaning = {"stop": ("stop",), "start": ("start",), "reboot": ("reboot",), "failover": ("failover", "reboot"),
               "snapshot": ("create",), "delete": _DELETE, "terminate": ("terminate",), "enable": VERBS["enable"],
               "suspend": ("suspend", "disable"), "resume": ("resume", "enable"), "invoke": ("invoke",),
               "purge": ("purge",), "redeploy": ("update",), "publish": ("publish",), "subscribe": ("subscribe",),
               "modify": ("modify", "update")}
    nouns = {"image", "limit", "cap", "deployment", "snap", "startup", "shutdown", "checkpoint", "cycle", "roll", "deploy"}
    for canonical, api in meaning.items():
        for phrase in LEXICON.get(canonical, ()):
            if " " not in phrase and "-" not in phrase and phrase not in VERBS and phrase not in nouns:
                VERBS[phrase] = api


_lexicon_verbs()
# What a verb says about its object: to scale is to change a capacity or a count.
_VERB_OBJECTS = {"scale": ("desired", "capacity", "count", "size"), "contents": ("object",),
                 "throttle": ("reserved", "concurrency")}
_PHRASAL_VERBS: list[tuple[re.Pattern[str], str]] = [(re.compile(p), v) for p, v in [
    (r"\b(?:turn|switch)(?:ed|ing)?\s+on\b", "enable"), (r"\b(?:turn|switch)(?:ed|ing)?\s+off\b", "disable"),
    (r"\b(?:shut|power)(?:ting|ing|ed)?\s+(?:it\s+|them\s+)?(?:down|off)\b", "stop"),
    (r"\bpower(?:ing)?\s+(?:it\s+|them\s+)?on\b", "start"), (r"\bspin(?:ning)?\s+up\b", "create"),
    (r"\bset(?:ting)?\s+up\b", "create"), (r"\btear(?:ing)?\s+down\b", "delete"), (r"\bget\s+rid\s+of\b", "delete"),
    (r"\bclean(?:ing)?\s+up\b", "delete"), (r"\bkick(?:ing)?\s+off\b", "start"), (r"\broll(?:ing)?\s+back\b", "rollback"),
    (r"\bfail(?:ing)?\s+over\b", "failover"), (r"\blook(?:ing)?\s+up\b", "describe"),
    (r"\b(?:put|move|place)\b(?=\s+\S+(?:\s+\S+)?\s+(?:in|into)\s+standby\b)", "enter"),
    (r"\b(?:take|bring|move)\b(?=\s+\S+(?:\s+\S+)?\s+out\s+of\s+standby\b)", "exit"),
    (r"\btake\s+(?:a\s+|an\s+)?(?=snapshot|backup|image)", "create"), (r"\bsign\s+up\b", "subscribe"),
    (r"\bforce\s+(?:a\s+)?(?:new\s+)?deployment\b", "redeploy"),
    (r"\b(?:force|fail)\s+(?:\S+\s+){0,2}?over\b", "failover"),
    (r"\b(?:what's|whats|what\s+is|anything)\s+(?:left\s+|stored\s+)?(?:in|inside|under)\b", "contents"),
    (r"\b(?:run|keep|have)\b(?=\s+\d+\s+(?:tasks|instances|replicas|copies|containers|nodes)\b)", "scale"),
    (r"\bbring\s+(?:\S+\s+){0,3}?(?:back\s+)?(?:online|up)\b", "start"), (r"\b(?:fire|start)\s+(?:\S+\s+)?up\b", "start"),
    (r"\bgive\s+(?:it|them|\S+)\s+an?\s+(?=reboot|restart|bounce|snapshot|backup)", ""),
]]
_QUESTION = re.compile(r"^\s*(?:what|which|who|how|is|are|does|do|did|any|when|where|why|whats|have|has)\b|\?\s*$")
# "can you delete X?" is still a request.
_POLITE = re.compile(r"^\s*(?:can|could|would|will)\s+(?:you|someone|somebody|we|i)\b|\b(?:please|pls)\b")


def _verb_key(word: str) -> str | None:
    """The VERBS key of an operator word, with its inflections ("deleted", "stopping", "creates")."""
    if word in VERBS:
        return word
    for suffix, add in (("ing", ""), ("ed", ""), ("es", ""), ("s", ""), ("d", ""), ("ing", "e"), ("ed", "e")):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            base = word[: -len(suffix)] + add
            if base in VERBS:
                return base
            if len(base) > 3 and base[-1] == base[-2] and base[:-1] in VERBS:  # stopped -> stop
                return base[:-1]
    return None


# ---------------------------------------------------------------------------------------------- prompts
# A trailing slash keeps a key prefix whole ("under images/" names a prefix, not images).
_TOKEN = re.compile(r"[a-z0-9][a-z0-9_.:/@=+*-]*[a-z0-9*/]|[a-z0-9]")
_RAW_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:/@=+*-]*[A-Za-z0-9*]")


def _phrases(text: str) -> str:
    """Join phrases into the words the API names use; a plural stays plural ("lambdas" -> "functions").
    One alternation (first listed phrase wins at a position, as in _PHRASES' order), tried only where a word
    starts with what some phrase starts with: trying it at every character was most of a warm start."""
    out: list[str] = []
    last = 0
    for word in _WORD_START.finditer(text):
        start = word.start()
        if start < last or word.group(0)[:2] not in _PHRASE_PREFIXES:
            continue
        match = _ALL_PHRASES.match(text, start)
        if match is None:
            continue
        out += [text[last:start], _replace_phrase(match)]
        last = match.end()
    return "".join(out) + text[last:] if out else text


def _replace_phrase(match: re.Match[str]) -> str:
    replacement = _PHRASES[int(match.lastgroup[1:])][1]
    said = match.group(0)
    plural = said.endswith("s") and not said.endswith(("ss", "us")) and replacement.strip() \
        and not replacement.endswith("s")
    return replacement + ("s" if plural else "")


_ALL_PHRASES = re.compile("|".join(f"(?P<p{i}>{pattern.pattern})" for i, (pattern, _) in enumerate(_PHRASES)))
_WORD_START = re.compile(r"(?<![\w-])[a-z0-9]+")
# The first two letters of every word a phrase may start with (a superset is fine: it only costs a try).
_PHRASE_PREFIXES = frozenset(w[:2] for w in re.findall(r"[a-z0-9]+", " ".join(p.pattern for p, _ in _PHRASES)))


@lru_cache(maxsize=None)
def member_words(member: str) -> tuple[str, ...]:
    """A member or output name as the matcher's words: SecurityGroupIds -> ("security", "group", "id").
    Cached: the 13 services' 20,000-odd member names repeat (DryRun, MaxResults, NextToken, Tags)."""
    return tuple(singular(w) for w in _phrases(normalise(xform_name(member, " "))).split() if w not in _PREPOSITIONS)


def name_parts(operation: str) -> tuple[str, list[str], list[str]]:
    """(verb, head, tail) of an API name as the matcher compares them: phrases joined first ("time to
    live" is one word), then cut at the first preposition, singular."""
    words = _phrases(xform_name(re.sub(r"V\d+$", "", operation), " ")).split()  # ListObjectsV2: list objects
    if len(words) > 2 and words[1] == "or":  # CreateOrUpdateTags: create tags
        words = [words[0], *words[3:]]
    verb, rest = words[0], words[1:]
    cut = next((i for i, w in enumerate(rest) if w in _PREPOSITIONS and i > 0), len(rest))
    return verb, [singular(w) for w in rest[:cut]], [singular(w) for w in rest[cut:] if w not in _PREPOSITIONS]


@dataclass
class PromptObjects:
    """What the prompt asks, as the matcher sees it."""

    verbs: list[str]                      # operator verbs, the request's own first ("delete", ...)
    question: bool
    named: list[str]                      # object words said in the prompt, in order (singular, phrases joined)
    plural: set[str]                      # those said in the plural ("tables")
    verbish: set[str]                     # named words that are verb forms ("enabled", "monitoring")
    implied: set[str]                     # object words implied by ids and named resources
    weak: set[str]                        # object words implied by service words ("rds" -> db)
    services: set[str]                    # services the prompt names (by word, id or ARN)
    mentioned_types: set[str]             # types of the resources the prompt names
    foreign: list[str] = field(default_factory=list)  # services outside the catalogue the prompt names
    values: list[str] = field(default_factory=list)   # ids, ARNs and other values
    clause: list[str] = field(default_factory=list)   # named words of the clause that carries the request

    @property
    def words(self) -> Counter:
        """Every object word the prompt holds, with how often (weakly implied ones once)."""
        counts = Counter(self.named)
        for word in self.implied | self.weak:
            counts[word] = max(counts[word], 1)
        return counts

    @property
    def main_verb(self) -> str | None:
        return self.verbs[0] if self.verbs else None

    def api_verbs(self) -> tuple[str, ...]:
        """The API verbs the request's verb may mean; a question only reads."""
        if self.question:
            return _READ
        if not self.verbs:
            return ()
        return VERBS[self.verbs[0]]


# Where one clause ends and another begins: operators add context ("reporting is done for the quarter",
# "before we run the migration") that names things the request is not about.
_CLAUSE_BREAK = re.compile(r"[,;!?()\[\]]|:(?=\s|$)|\.(?:\s|$)|\s[-–—]+\s|(?<![\w-])(?:before|after|because|since|so|while|but|though|"
                           r"although|cause|cuz|once|until|unless|whereas|then|we|we're|were|i|i'm|im|they|they're|"
                           r"someone|somebody|it's|its|it\s+is|which|that's|thats)(?![\w-])")
_VERB_MARK = "qqverbqq"
_RESOURCE_MARK = re.compile(r"^zzres\d+zz$")
# Words that may stand before a request's verb at the start of its clause ("please stop", "can you stop",
# "I need you to stop", "To delete ...").
_LEAD_IN = frozenset("""please pls plz kindly can could would will you someone somebody anyone just now quickly go ahead
and then i we want need needs to lets let us also hey ok okay so right u ya yeah would like i'd we'd must should
gonna wanna""".split())
_POLITE_ANYWHERE = re.compile(r"^\s*(?:can|could|would|will)\b|\b(?:can|could|would|will)\s+(?:you|u|someone|somebody|we|i)\b"
                              r"|\b(?:please|pls|plz)\b")
# "do a failover", "give it a reboot", "run a snapshot": the noun is the verb.
_LIGHT_VERB = re.compile(r"(?<![\w-])(?:do|perform|run|trigger|give\s+(?:it|them)|take|make)\s+(?:a|an|the)\s+"
                         r"(?:[a-z-]+\s+)?(failover|reboot|restart|snapshot|backup|refresh|redeploy|deployment)\b")
_FLAG = re.compile(r"(?<!\S)--?[a-z][a-z0-9-]*(?:[ =](?!-)\S+)?")
_TO_A_COUNT = re.compile(r"\bto\s+\d+\s+(?:instances|nodes|tasks|replicas|servers|hosts|workers|copies)\b")
_CAUSATIVE = re.compile(r"\bget\s+(?:it|that|this|them)\s+(?:fixed|sorted|done|resolved)\b")
# "the volume attached to web-1", "the disk mounted on db-2": which resource is meant, not what to do to it
# ("attached" read as the verb made "delete the volume attached to X" a DetachVolume).
# Not "which policies are attached to X", where being attached is what is asked.
# Besides the shared phrases, the other pairings of those words ("attached on", "mounted to", "connected
# on"): this pattern has always read any of the three participles with either preposition.
_LINK_QUALIFIER = re.compile(r"\b(?P<before>[a-z0-9-]+)(?P<link>\s+(?:(?:that|which)\s+(?:is|are|was|were|'s)\s+)?"
                             + phrase_alternation(LINK_PHRASES + ("attached on", "mounted to", "connected on"))
                             + r"\s+(?:the\s+)?\S+)")
_PREDICATE = frozenset({"is", "are", "was", "were", "be", "been", "being", "get", "gets", "got", "stay", "stays"})


def _without_link_qualifier(match: re.Match[str]) -> str:
    return match.group(0) if match.group("before") in _PREDICATE else match.group("before") + " "


def analyse(masked: str, mentioned_types: Iterable[str] = (), raw_prompt: str | None = None,
            read_replica: bool = False, names: Iterable[str] = (), vocabulary: frozenset[str] = frozenset(),
            marker_types: dict[str, str] | None = None) -> PromptObjects:
    """Read the (name-masked) prompt: its verbs, the objects it names, the services it points at.

    The request's verb is an imperative at the start of a clause ("... reporting is done, stop X": stop;
    "the batch run finished" has no request in it). ``clause`` holds the object words of the clause that
    carries it (every clause when there is none: a question, a noun phrase). Ids and ARNs are read from
    ``raw_prompt`` (masking and hint removal may have cut them). ``names`` are the words of the names of the
    resources identified for this request: a run of them ("the preprod uploads bucket") is a name typed as
    words, not an object kind."""
    from agent.lexicon import correct_typos

    text = correct_typos(normalise(masked), vocabulary)
    text = _CAUSATIVE.sub(" ", re.sub(r"(?<![\w-])re-(?=[a-z])", "", text))
    text = _FLAG.sub(" ", text)  # "--profile admin", "--region us-east-1": options, not objects
    text = _LINK_QUALIFIER.sub(_without_link_qualifier, text)
    question = bool(_QUESTION.search(text)) and not _POLITE_ANYWHERE.search(text)
    foreign_phrases = [(m.start(), m.group(0)) for m in FOREIGN_PHRASES.finditer(text)]
    verbs: list[str] = []
    implied: set[str] = set()
    text = _LIGHT_VERB.sub(lambda m: " " + m.group(1) + " ", text)
    if _TO_A_COUNT.search(text):  # "to 2 instances", "to 5 nodes": a capacity or a count is being set
        implied.update(_VERB_OBJECTS["scale"])
    for pattern, verb in _PHRASAL_VERBS:
        if pattern.search(text):
            implied.update(_VERB_OBJECTS.get(verb, ()))
            if verb and not question:
                verbs.append(verb)
            text = pattern.sub(f" {_VERB_MARK} " if verb else " ", text, count=1)
            text = pattern.sub(" ", text)
    named: list[str] = []
    clauses: list[int] = []      # the clause of each named word
    verb_clause: int | None = None
    plural: set[str] = set()
    verbish: set[str] = set()
    weak: set[str] = set()
    services: set[str] = set()
    values: list[str] = []
    foreign: list[tuple[int, str]] = []
    marked: list[tuple[int, str | None]] = []
    said_services: list[tuple[int, str]] = []
    pronouns: set[int] = set()
    name_words = {w for n in names for w in re.split(r"[^a-z0-9]+", normalise(n)) if len(w) >= 3}
    for raw in _RAW_TOKEN.findall(raw_prompt or ""):
        arn = _ARN.match(raw)
        if arn:
            services.add(_ARN_SERVICE.get(arn.group(1), arn.group(1)))
            values.append(raw)
            kind = re.match(r"^arn:[^:]+:[^:]+:[^:]*:[^:]*:([a-z-]+)[/:]", raw.lower())
            if kind:  # arn:aws:iam::aws:policy/ReadOnlyAccess names a policy
                implied.update(singular(w) for w in _phrases(kind.group(1).replace("-", " ")).split())
        elif (found := next(((o, svc) for pattern, o, svc in _ID_OBJECTS if pattern.match(raw)), None)) is not None:
            implied.update(found[0])
            services.add(found[1])
            values.append(raw)
    for clause, part in enumerate(_CLAUSE_BREAK.split(_phrases(text))):
        tokens = _TOKEN.findall(part or "")
        tokens = _without_name_runs(tokens, name_words)
        leading = True
        for raw in tokens:
            if _RESOURCE_MARK.match(raw):  # a resource the prompt names: its type's words are implied
                leading = False
                marked.append((clause, (marker_types or {}).get(raw)))
                continue
            if raw in _PRONOUNS:
                pronouns.add(clause)
            if raw != _VERB_MARK and not raw.isalpha() and raw not in SERVICE_WORDS and raw not in FOREIGN_SERVICES:
                if raw not in values and not raw.startswith("arn:"):
                    values.append(raw)
                continue  # a value ("on-demand", an id) neither is nor stops a request's verb
            at_start, leading = leading, leading and raw in _LEAD_IN
            if raw == _VERB_MARK:
                verb_clause = clause if verb_clause is None else verb_clause
                leading = False
                continue
            if raw in FOREIGN_SERVICES:
                foreign.append((clause, raw))
                continue
            key = _verb_key(raw)
            if key is not None and raw not in SERVICE_WORDS:
                if key in ("tag", "untag", "label"):
                    implied.add("tag")
                # The request's verb is a bare imperative at the start of its clause ("delete"); "reserved
                # concurrency", "the batch run finished" and every verb word of a question name or describe
                # an object instead.
                if verb_clause is None and not question and raw == key and at_start:
                    verbs.insert(0, key)
                    verb_clause = clause
                    weak.add(raw)
                    if key in ("tag", "untag", "label"):  # "tag X with k=v" names the tags
                        named.append("tag")
                        clauses.append(clause)
                    implied.update(_VERB_OBJECTS.get(key, ()))
                    continue
                if key not in verbs and not question:
                    verbs.append(key)
                named.append(singular(raw))
                clauses.append(clause)
                verbish.add(singular(raw))
                if singular(raw) != raw:
                    plural.add(singular(raw))
                continue
            if raw in _STOP or raw in _LEAD_IN:
                continue
            if raw in SERVICE_WORDS:
                service, words = SERVICE_WORDS[raw]
                said_services.append((clause, service))
                weak.update(words)
                continue
            if raw == "autoscaling":
                said_services.append((clause, "autoscaling"))
            word = singular(raw)
            if word != raw:
                plural.add(word)
            named.append(word)
            clauses.append(clause)
    if verbs and verb_clause is None:
        verbs = []  # verb words, but none in a request's place: nothing is asked to be done
    if verb_clause is None and question and clauses:
        verb_clause = clauses[0]  # a question is about what its first clause names ("any unhealthy hosts ...?")
    services |= {svc for c, svc in said_services if verb_clause is None or c == verb_clause}
    clause_words = [w for w, c in zip(named, clauses) if verb_clause is None or c == verb_clause]
    foreign_words = [w for c, w in foreign if verb_clause is None or c == verb_clause]
    if foreign_phrases and (verb_clause is None or len(_CLAUSE_BREAK.split(text[: foreign_phrases[0][0]])) - 1
                            == verb_clause):
        foreign_words = [foreign_phrases[0][1], *foreign_words]
    types = set(mentioned_types)
    if verb_clause is not None and marked and marker_types and verb_clause not in pronouns:
        # Only the resources the request clause names (or points back at with "it") are what it acts on:
        # in "terminate web-server-3, it's been replaced by the ASG" the group is context.
        types = {t for c, t in marked if c == verb_clause and t} or types
    for rtype in types:
        implied.update(TYPE_OBJECTS.get(rtype, ()))
    if read_replica:
        implied.update(("read", "replica"))
    return PromptObjects(verbs, question, named, plural, verbish, implied, weak, services, types, foreign_words,
                         values, clause_words)


_PRONOUNS = frozenset({"it", "them", "this", "that", "these", "those", "its", "their", "one"})
_TYPE_NOUN_WORDS = frozenset({"bucket", "queue", "table", "function", "topic", "stack", "cluster", "db", "instance",
                              "volume", "role", "service", "group", "server", "box", "host", "fleet", "lambda"})


def _without_name_runs(tokens: list[str], name_words: set[str]) -> list[str]:
    """Drop runs of words that belong to identified resources' names ("batch workers", "the masters
    bucket"): a name typed as words. Two or more, or one followed by a type noun."""
    if not name_words:
        return tokens
    singulars = name_words | {singular(w) for w in name_words}
    out: list[str] = []
    i = 0
    while i < len(tokens):
        j = i
        while j < len(tokens) and singular(tokens[j]) in singulars and tokens[j] not in _LEAD_IN \
                and tokens[j] not in _TYPE_NOUN_WORDS and tokens[j] not in SERVICE_WORDS:
            j += 1
        if j - i >= 2 or (j - i == 1 and j < len(tokens) and singular(tokens[j]) in _TYPE_NOUN_WORDS):
            i = j
            continue
        out.append(tokens[i])
        i += 1
    return out


# ---------------------------------------------------------------------------------------------- matching
@dataclass(frozen=True)
class Match:
    entry: CatalogueEntry
    index: int
    score: float
    coverage: float         # share of the entry's head words the prompt holds
    explained: int          # object words of the prompt the entry accounts for
    unexplained: tuple[str, ...]
    verb_rank: int          # 0: the prompt's verb means exactly this API verb
    dense: float
    lexical: float

    @property
    def operation(self) -> str:
        return self.entry.operation


@dataclass
class CatalogueResult:
    prompt: PromptObjects
    matches: list[Match]            # entries that agree with the prompt (verb and object), best first
    nearest: list[CatalogueEntry]   # the closest entries by meaning, agreeing or not (for "nearest: ...")
    ambiguous: bool = False
    confidence: float = 0.0
    reason: str = ""                # why nothing was chosen, when nothing was

    @property
    def best(self) -> Match | None:
        return self.matches[0] if self.matches and not self.ambiguous and not self.reason else None


class OperationMatcher:
    """Scores catalogue entries against a prompt; deterministic apart from the dense and lexical signals,
    which only order entries that already agree."""

    def __init__(self, entries: list[CatalogueEntry]):
        self.entries = entries
        parts = [name_parts(e.operation) for e in entries]
        self.heads = [Counter(head) for _, head, _ in parts]
        self.tails = [set(tail) for _, _, tail in parts]
        self.plural_heads = [bool(e.head) and e.head[-1].endswith("s") and singular(e.head[-1]) != e.head[-1]
                             for e in entries]
        self.members = [{w for m in e.members for w in member_words(m)} for e in entries]
        # What a read answers ("status" of DescribeDBInstances, "VisibilityTimeout" of GetQueueAttributes):
        # "what's the status of X" is answered by describing X.
        self.returns = [{w for name in e.returns for w in member_words(name)} if not e.mutating else set()
                        for e in entries]
        # The documentation's first sentence: it may name what the API name does not ("capacity" quotas of
        # DescribeLimits). It only keeps a word from counting against an entry.
        self.summaries = [{stem(singular(w)) for w in re.findall(r"[a-z0-9]+", _phrases(normalise(e.summary)))}
                          for e in entries]
        # Words that name something an API call acts on or takes: object words of the names, types, verbs,
        # and the words of input members ("timeout" is UpdateFunctionConfiguration's, not a concurrency's).
        self.vocabulary = frozenset(w for h, t in zip(self.heads, self.tails) for w in set(h) | t) \
            | {w for words in TYPE_OBJECTS.values() for w in words} | {verb for verb, _, _ in parts} \
            | {member_words(m)[-1] for e in entries for m in e.members if len(m) > 2 and member_words(m)}
        self.vocabulary_stems = frozenset(stem(w) for w in self.vocabulary)
        self.nouns = frozenset(w for h, t in zip(self.heads, self.tails) for w in set(h) | t)
        by_word: dict[str, list[int]] = {}
        for i, (head, tail) in enumerate(zip(self.heads, self.tails)):
            for word in set(head) | tail:
                by_word.setdefault(word, []).append(i)
            if not head or set(head) <= GENERIC:  # Publish, TagResource: candidates by verb and binding
                by_word.setdefault("", []).append(i)
        self.by_word = by_word

    def object_words_of(self, prompt: PromptObjects) -> list[str]:
        """The request clause's words that name some object of the catalogue (the rest is chatter)."""
        return [w for w in prompt.clause if w in self.vocabulary or stem(w) in self.vocabulary_stems]

    def match(self, prompt: PromptObjects, dense: np.ndarray | None = None,
              lexical: np.ndarray | None = None) -> CatalogueResult:
        nearest = self._nearest(dense, lexical)
        if prompt.foreign:
            return CatalogueResult(prompt, [], nearest, reason=f"{prompt.foreign[0]} is not one of the services I "
                                   "plan for (" + ", ".join(sorted(SERVICES_COVERED)) + ")")
        words = prompt.words
        verbs = prompt.api_verbs()
        named_objects = self.object_words_of(prompt)
        candidates = {i for w in words for i in self.by_word.get(w, ())} | set(self.by_word.get("", ()))
        matches = [m for i in candidates
                   if (m := self._score(i, prompt, words, verbs, named_objects, dense, lexical)) is not None]
        if any(m.coverage == 1.0 for m in matches):
            matches = [m for m in matches if m.coverage == 1.0]  # a partial name only when nothing else agrees
        if prompt.services and any(m.entry.service in prompt.services for m in matches):
            matches = [m for m in matches if m.entry.service in prompt.services]  # "lambda account settings"
        matches.sort(key=lambda m: (-m.score, m.entry.id))
        result = CatalogueResult(prompt, matches, nearest)
        if not matches:
            return result
        best = matches[0]
        runner = next((m for m in matches[1:] if _family(m.entry) != _family(best.entry)), None)
        result.confidence = _confidence(best, runner.score if runner else None)
        if runner is not None and best.score - runner.score < AMBIGUOUS_MARGIN \
                and not _interchangeable(best, runner, self):
            result.ambiguous = True
        anchored = 1 if set(best.entry.resource_types) & prompt.mentioned_types else 0
        focus = next(iter(named_objects), None)
        if best.unexplained and (best.explained + anchored < len(best.unexplained)
                                 or (prompt.question and focus in best.unexplained)):
            # It leaves as much of what the prompt names unexplained as it explains ("how much did the
            # database cost": the database, but not its cost): not this call, and no other agrees.
            result.reason = ("nothing I can do covers " + ", ".join(best.unexplained)
                             + f" (the nearest call, {best.entry.service} {best.entry.operation}, does not)")
        return result

    def _score(self, i: int, prompt: PromptObjects, words: Counter, verbs: tuple[str, ...], named_objects: list[str],
               dense: np.ndarray | None, lexical: np.ndarray | None) -> Match | None:
        entry = self.entries[i]
        if entry.verb not in verbs and not (entry.verb == "batch" and "delete" in verbs):
            return None
        if prompt.question and entry.needs_approval:
            return None  # a question never yields a change, nor hands out data or secrets
        head, tail, members = self.heads[i], self.tails[i], self.members[i]
        if prompt.mentioned_types and not (set(entry.resource_types) & prompt.mentioned_types) and (
                entry.bindings or not head or not set(head) <= set(named_objects)
                or not _takes_any_resource(entry, prompt.mentioned_types)):
            # The prompt names a resource this call cannot take; a call of the resource's own service that
            # takes any resource by a free identifier may still be what the prompt names in words ("recent
            # RDS events for orders-db": DescribeEvents' SourceIdentifier).
            return None
        said = set(named_objects)
        missing = [w for w in head for _ in range(head[w] - min(head[w], words.get(w, 0)))]
        if missing:
            # Generic words of the name ("configuration") need not be said when the prompt names a member
            # ("timeout" of UpdateFunctionConfiguration) or the rest of the object; in a long name one
            # qualifier may go unsaid ("dead letter queue" of ListDeadLetterSourceQueues), never its noun.
            strict = [w for w in missing if w not in GENERIC]
            named_member = bool(said & members - set(head))
            distinct = [w for w in head if w not in GENERIC]
            qualifier = (len(strict) == 1 and len(set(distinct)) >= 3 and strict[0] != distinct[-1]
                         and head[strict[0]] == 1)
            if (strict and not qualifier) or (not strict and not named_member and len(missing) > 1):
                return None
        for binding in entry.bindings:
            # What the call acts on must be named: "lower the dns ttl" names no table for UpdateTimeToLive.
            if binding.required and not (set(binding.resource_types) & prompt.mentioned_types) and not any(
                    all(w in words for w in TYPE_OBJECTS.get(t, ("?",))) for t in binding.resource_types):
                return None
        anchored = bool(set(entry.resource_types) & prompt.mentioned_types)
        if head and not anchored and not any(w in set(prompt.named) | prompt.implied for w in head):
            return None  # the request's own verb word is not an object ("backup X" is not CreateBackup of nothing)
        if not head:
            # No object in the name (Publish, Unsubscribe, Scan): the object is the resource it binds,
            # or the service the prompt names.
            if not (set(entry.resource_types) & prompt.mentioned_types) and entry.service not in prompt.services:
                return None
        coverage = 1.0 - len(missing) / max(sum(head.values()), 1)
        by_type = set(_implied_by_types(entry.resource_types))
        own = set(head) | tail | {entry.verb} | by_type | members | self.returns[i]
        own_stems = {stem(w) for w in own}
        explained_head = [w for w in named_objects if w in head or w in tail]
        explained_other = [w for w in named_objects if w not in head and w not in tail
                           and (w in own or stem(w) in own_stems)]
        unexplained = tuple(w for w in named_objects if w not in head and w not in tail and w not in own
                            and stem(w) not in own_stems and stem(w) not in _GENERIC_STEMS
                            and (w not in prompt.verbish or w in self.nouns) and stem(w) not in self.summaries[i]
                            and not (w in STATE_WORDS and not entry.mutating))
        verb_rank = verbs.index(entry.verb) if entry.verb in verbs else len(verbs)
        # Required members no named resource fills and no value in the prompt could: a call that cannot run
        # as asked ("show the update history": DescribeUpdate needs an update id, ListUpdates does not).
        bound = {b.member for b in entry.bindings if set(b.resource_types) & prompt.mentioned_types}
        unfilled = 0 if prompt.values else len([m for m in entry.required if m not in bound])
        d = float(dense[i]) if dense is not None else 0.0
        lx = float(lexical[i]) if lexical is not None else 0.0
        tail_named = len(tail & (said | prompt.implied)) / len(tail) if tail else 1.0
        # The first object the request names is what it is about ("ssl policies" of "which ssl policies can
        # a listener use", "volume" of "attach a volume to an instance").
        first = next(iter(named_objects), None)
        score = (1.2 * len(explained_head) + 0.5 * len(explained_other) - 0.8 * len(unexplained)
                 + (0.5 if first is not None and first in head else 0.0)
                 - (0.3 if entry.operation.startswith("Batch") or entry.operation.endswith("Batch") else 0.0)
                 + 0.6 * tail_named - 0.15 * verb_rank + 0.4 * d + 0.2 * lx
                 - (0.5 if entry.deprecated else 0.0) - 0.3 * len(missing) - 0.3 * unfilled
                 + (0.3 if set(entry.resource_types) & prompt.mentioned_types else 0.0)
                 + (0.5 if entry.service in prompt.services else (-0.4 if prompt.services else 0.0))
                 + (0.4 if self.plural_heads[i] == bool(prompt.plural & set(head)) else 0.0))
        return Match(entry, i, round(score, 4), coverage, len(explained_head) + len(explained_other), unexplained,
                     verb_rank, round(d, 4), round(lx, 4))

    def _nearest(self, dense: np.ndarray | None, lexical: np.ndarray | None, n: int = 3) -> list[CatalogueEntry]:
        if dense is None or not len(self.entries):
            return []
        combined = 0.7 * dense + 0.3 * (lexical if lexical is not None else 0.0)
        order = np.argsort(-combined, kind="stable")[:n]
        # Only calls that resemble the request: "order me a pizza" has no nearest call (its best is 0.15; calls
        # an operator would recognise score 0.5 and up), and listing three at random reads as a suggestion.
        return [self.entries[i] for i in order if dense[i] >= NEAREST_FLOOR]


AMBIGUOUS_MARGIN = 0.25
NEAREST_FLOOR = 0.40  # dense similarity below which a call is not offered as "nearest"
# Calls that make something: the resources a prompt names may be their source, not what they take.
_MAKING = ("Create", "Run", "Copy", "Restore", "Import", "Register", "Allocate", "Request", "Put", "Publish", "Send",
           "Export", "Start")
SERVICES_COVERED = ("EC2", "RDS", "S3", "Lambda", "DynamoDB", "ECS", "ELB", "Auto Scaling", "SQS", "SNS", "EKS",
                    "CloudFormation", "IAM")


_ANY_RESOURCE = frozenset({"SourceIdentifier", "ResourceIdentifier", "ResourceName", "ResourceArn", "SourceArn",
                           "ResourceId", "resourceArn"})


def _takes_any_resource(entry: CatalogueEntry, types: set[str]) -> bool:
    from agent.protocol import RESOURCE_TYPES

    return bool(_ANY_RESOURCE & set(entry.members)) and entry.service in {RESOURCE_TYPES[t] for t in types}


def _family(entry: CatalogueEntry) -> str:
    """A call and its batch form (DeleteScheduledAction, BatchDeleteScheduledAction), or its newer version
    (ListObjects, ListObjectsV2), answer one request."""
    return entry.service + "." + re.sub(r"^Batch|Batch$|V\d+$", "", entry.operation)


def same_family(a: CatalogueEntry, b: CatalogueEntry) -> bool:
    return _family(a) == _family(b)


def _interchangeable(a: Match, b: Match, matcher: OperationMatcher) -> bool:
    """Two reads of the same object (ListClusters / DescribeClusters) answer the same request: the better
    scored one is planned without a question."""
    if a.entry.mutating or b.entry.mutating or a.entry.needs_approval or b.entry.needs_approval:
        return False
    ha, hb = set(matcher.heads[a.index]), set(matcher.heads[b.index])
    return ha == hb or ha <= hb or hb <= ha


def _implied_by_types(types: Iterable[str]) -> list[str]:
    return [w for t in types for w in TYPE_OBJECTS.get(t, ())]


def _confidence(best: Match, runner_up: float | None) -> float:
    """A logistic of the winner's agreement and its margin; ``cloudops eval`` prints how it is calibrated."""
    margin = best.score - runner_up if runner_up is not None else 1.5
    z = 2.2 * min(margin, 2.0) + 0.6 * best.explained - 1.2 * len(best.unexplained) - 0.4 * best.verb_rank \
        - 1.5 * (1.0 - best.coverage) - 0.5
    return round(1.0 / (1.0 + math.exp(-z)), 3)
