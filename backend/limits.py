"""Size caps on content Merit reads that someone else chose: larger content is refused unread.
A module of its own, with no imports, so light clients (the API client) can use them cheaply."""

SPEC_MAX_BYTES = 1 << 20  # a model spec is a small JSON document
GLOBAL_MODEL_MAX_BYTES = 1 << 31  # the largest global model, from storage or the API
REPORT_MAX_BYTES = 64 << 20  # a round report of 256 trainers with every detector's scores
UPDATE_MAX_BYTES = 64 << 20  # one trainer update: the API's upload cap and the aggregator's default
UPDATE_MAX_ABS = 1e4  # no sane weight delta is this large; it overflows float16 and poisons means
RPC_MAX_RESPONSE_BYTES = (
    64 << 20
)  # one JSON-RPC answer; the largest Merit reads (a contract's code, a page of logs) is far smaller
VALIDATION_MAX_BYTES = (
    1 << 30
)  # a validation set's arrays, unpacked: full MNIST is 188 MB, CIFAR-10's 50,000 images 614 MB
