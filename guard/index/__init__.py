"""Binary-code indexes behind one protocol: FAISS for use, brute force as the test oracle."""

from guard.index.base import BinaryIndex, Hits
from guard.index.brute import BruteForceIndex
from guard.index.faiss_binary import FaissBinaryIndex

__all__ = ["BinaryIndex", "Hits", "BruteForceIndex", "FaissBinaryIndex"]
