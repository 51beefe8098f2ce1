"""The data layer: tokenizers, installable data sets, corpora, labelled files for classification
and tagging, time series for forecasting and anomaly detection, parallel texts for translation,
and truncated-BPTT streams.

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
from .datasets import (
    PEOPLES_DAILY_ENTITIES,
    UCR_SETS,
    peoples_daily_ner,
    peoples_daily_pos,
    polarity_dataset,
    ucr_dataset,
)
from .errors import DataError
from .labelled import (
    SCHEMES,
    check_tag_scheme,
    read_conll,
    read_labelled_text,
    read_series,
    read_series_csv,
    read_series_npz,
    read_ts,
)
from .parallel import (
    BIBLE_MISALIGNED,
    BIBLE_MODULES,
    align_verses,
    bible_pairs,
    clean_osis,
    parse_diatheke,
    read_pairs,
)
from .series import (
    AnomalySeries,
    Series,
    anomaly_ranges,
    check_series,
    co2_series,
    elnino_series,
    fill_gaps,
    read_series_table,
    sunspots_series,
    tsb_uad_series,
    ucr_anomaly_series,
)
from .streams import Batch, ConditionedStreams, StreamBatches, allocate_streams
from .tokenizers import UNK, CharTokenizer, Tokenizer, WordTokenizer, make_tokenizer

__all__ = [
    "AnomalySeries", "BIBLE_MISALIGNED", "BIBLE_MODULES", "Batch", "CATALOG", "CharTokenizer", "ConditionedStreams",
    "DataError", "Dataset", "PEOPLES_DAILY_ENTITIES", "SCHEMES", "SHAKESPEARE_GENRES", "Series", "StreamBatches",
    "Tokenizer", "UCR_SETS", "UNK", "WordTokenizer", "align_verses", "allocate_streams", "anomaly_ranges",
    "bible_pairs", "check_series", "check_tag_scheme", "clean_osis", "co2_series", "data_dir", "data_files",
    "elnino_series", "fill_gaps", "install", "join_texts", "list_datasets", "locate", "make_tokenizer", "parse_diatheke",
    "peoples_daily_ner", "peoples_daily_pos", "polarity_dataset", "read_class_dir", "read_conll",
    "read_labelled_text", "read_pairs", "read_series", "read_series_csv", "read_series_npz", "read_series_table",
    "read_text_file", "read_ts", "shakespeare_by_genre", "shakespeare_corpus", "shakespeare_genres",
    "shakespeare_texts", "split_contiguous", "strip_gutenberg", "sunspots_series", "tsb_uad_series", "ucr_anomaly_series", "ucr_dataset",
]
