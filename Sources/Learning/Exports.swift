/// Learning is the layers (`Layers`, MPI-free) plus what trains them across ranks: the
/// data-parallel trainer, gradient fusion, sharded optimizer state, sparse exchanges,
/// distributed calibration. Importing Learning imports the layers.
@_exported import Layers
