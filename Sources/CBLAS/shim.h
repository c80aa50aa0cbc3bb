#ifndef MOSAIC_CBLAS_SHIM_H
#define MOSAIC_CBLAS_SHIM_H
#include <cblas.h>
#include <stddef.h>

/* LAPACK's least squares through QR (OpenBLAS exports the Fortran symbol): min ‖op(A) X − B‖
   for an m × n column-major A of full rank; B (ldb × nrhs) is overwritten by X in its first n
   rows. lwork = −1 asks for the workspace size in work[0]. trans_len is Fortran's hidden length
   of `trans` (1). */
void dgels_(const char *trans, const int *m, const int *n, const int *nrhs, double *a, const int *lda, double *b,
            const int *ldb, double *work, const int *lwork, int *info, size_t trans_len);
#endif
