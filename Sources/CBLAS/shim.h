#ifndef MOSAIC_CBLAS_SHIM_H
#define MOSAIC_CBLAS_SHIM_H
#include <cblas.h>
#endif
