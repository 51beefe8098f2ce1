"""The data layer: tokenizers, installable data sets, corpora and truncated-BPTT streams.

Every problem with data is a ``DataError`` (a ``ValueError``) whose message says what is wrong
and what to do; the command line prints it as one line and exits with status 2.
"""

from .catalog import CATALOG, Dataset, data_dir, data_files, install, list_datasets, locate
from .corpora import (
    SHAKESPEARE_GENRES,
    join_texts,
    read_class_dir,
    read_text_file,
    shakespeare_by_genre,
    shakespeare_corpus,
    shakespeare_genres,
    shakespeare_texts,
    split_contiguous,
    strip_gutenberg,
)
from .errors import DataError
from .streams import Batch, ConditionedStreams, StreamBatches, allocate_streams
from .tokenizers import UNK, CharTokenizer, Tokenizer, WordTokenizer, make_tokenizer

__all__ = [
    "CATALOG", "Batch", "CharTokenizer", "ConditionedStreams", "DataError", "Dataset", "SHAKESPEARE_GENRES",
    "StreamBatches", "Tokenizer", "UNK", "WordTokenizer", "allocate_streams", "data_dir", "data_files", "install",
    "join_texts", "list_datasets", "locate", "make_tokenizer", "read_class_dir", "read_text_file",
    "shakespeare_by_genre", "shakespeare_corpus", "shakespeare_genres", "shakespeare_texts", "split_contiguous",
    "strip_gutenberg",
]
