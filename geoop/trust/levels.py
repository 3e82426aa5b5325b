"""The default levels of trust a prediction is reported at, unless the user picks others (no imports: the
`geoop` program's options show them before anything heavy is loaded)."""

#: the p-value under which a geometry is flagged as unlike the training set
NOVELTY_LEVEL = 0.05
#: the probability an error band holds the truth with
CONFIDENCE = 0.9
