"""The labelling page: pick arc and non-arc patches on your own frames in the browser.

``arcscan label FRAMES_DIR --labels labels.csv`` serves a local web app (:mod:`.app`) over a
folder of frames (:mod:`.folder`) that writes every change at once, atomically, to the labels
CSV the pipeline reads (:mod:`.store`); with a model it overlays the arc probability and
suggests the patches that teach the model most (:mod:`.suggest`). Extra ``[label]``.
"""
