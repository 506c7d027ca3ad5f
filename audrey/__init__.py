"""Audrey: a personal spoken-digit recognizer you can record, train, personalize and look inside."""

__version__ = "0.1.0"

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
