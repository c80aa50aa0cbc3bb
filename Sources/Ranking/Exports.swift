/// Ranking is the ranker's inference (`RankerInference`, MPI-free: the model, its features,
/// the request scorer, loading a saved ranker) plus its collective parts: training, variants,
/// sharded data and routing. Importing Ranking imports the inference.
@_exported import RankerInference
