// HDF5's type and mode constants are macros (H5T_NATIVE_FLOAT calls H5open), which Swift cannot
// import. Each getter below returns one of them.
#ifndef MOSAIC_CHDF5_SHIM_H
#define MOSAIC_CHDF5_SHIM_H
#include <hdf5.h>

static inline hid_t mosaic_h5t_float(void) { return H5T_NATIVE_FLOAT; }
static inline hid_t mosaic_h5t_double(void) { return H5T_NATIVE_DOUBLE; }
static inline hid_t mosaic_h5t_int32(void) { return H5T_NATIVE_INT32; }
static inline hid_t mosaic_h5t_int64(void) { return H5T_NATIVE_INT64; }
static inline hid_t mosaic_h5t_uint8(void) { return H5T_NATIVE_UINT8; }
static inline hid_t mosaic_h5t_c_s1(void) { return H5T_C_S1; }
static inline hid_t mosaic_h5p_file_access(void) { return H5P_FILE_ACCESS; }
static inline hid_t mosaic_h5p_dataset_create(void) { return H5P_DATASET_CREATE; }
static inline hid_t mosaic_h5p_link_create(void) { return H5P_LINK_CREATE; }
static inline unsigned mosaic_h5f_acc_trunc(void) { return H5F_ACC_TRUNC; }
static inline unsigned mosaic_h5f_acc_excl(void) { return H5F_ACC_EXCL; }
static inline unsigned mosaic_h5f_acc_rdonly(void) { return H5F_ACC_RDONLY; }
static inline unsigned mosaic_h5f_acc_rdwr(void) { return H5F_ACC_RDWR; }
static inline hsize_t mosaic_h5s_unlimited(void) { return H5S_UNLIMITED; }
static inline size_t mosaic_h5t_variable(void) { return H5T_VARIABLE; }
static inline hid_t mosaic_h5p_default(void) { return H5P_DEFAULT; }
static inline hid_t mosaic_h5s_all(void) { return H5S_ALL; }
static inline hid_t mosaic_h5e_default(void) { return H5E_DEFAULT; }
/// Silences HDF5's automatic error-stack printing; Mosaic turns failures into Swift errors.
static inline void mosaic_h5_silence_errors(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }
#endif
