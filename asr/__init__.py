"""asr: a recurrent (BiLSTM/BiGRU) CTC speech recognition toolkit."""

__version__ = "0.1.0"
