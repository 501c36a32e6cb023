"""corpuslab: does this training data make a better model?"""

__version__ = "0.1.0"
