// OpenMPI's handles (MPI_COMM_WORLD, MPI_FLOAT, MPI_SUM, ...) are macros over the addresses of
// globals, which Swift cannot import. Each getter below returns one of them.
#ifndef MOSAIC_CMPI_SHIM_H
#define MOSAIC_CMPI_SHIM_H
#include <mpi.h>

static inline MPI_Comm mosaic_comm_world(void) { return MPI_COMM_WORLD; }
static inline MPI_Errhandler mosaic_errors_return(void) { return MPI_ERRORS_RETURN; }
static inline MPI_Datatype mosaic_type_float(void) { return MPI_FLOAT; }
static inline MPI_Datatype mosaic_type_double(void) { return MPI_DOUBLE; }
static inline MPI_Datatype mosaic_type_int32(void) { return MPI_INT32_T; }
static inline MPI_Datatype mosaic_type_int64(void) { return MPI_INT64_T; }
static inline MPI_Datatype mosaic_type_uint8(void) { return MPI_UINT8_T; }
static inline MPI_Datatype mosaic_type_uint64(void) { return MPI_UINT64_T; }
static inline MPI_Op mosaic_op_sum(void) { return MPI_SUM; }
static inline MPI_Op mosaic_op_max(void) { return MPI_MAX; }
static inline MPI_Op mosaic_op_min(void) { return MPI_MIN; }
static inline void *mosaic_in_place(void) { return MPI_IN_PLACE; }
#endif
