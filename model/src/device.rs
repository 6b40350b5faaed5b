//! Picking a backend device. Without a GPU, burn's CUDA backend panics at the first tensor
//! operation; [`cuda_device`] looks for the driver and the device first and says what is missing.

/// Why a CUDA device cannot be used.
#[cfg(feature = "cuda")]
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("no NVIDIA driver: the CUDA driver library (libcuda) was not found")]
    NoDriver,
    #[error("the CUDA driver failed to initialise: {0}")]
    Init(String),
    #[error("CUDA device {index} requested, but {count} device(s) found")]
    NoDevice { index: usize, count: usize },
}

/// The CUDA device `index`, after checking that the driver loads and the device exists.
#[cfg(feature = "cuda")]
pub fn cuda_device(index: usize) -> Result<burn::backend::cuda::CudaDevice, DeviceError> {
    // SAFETY: loads libcuda dynamically and checks that its symbols resolve; no CUDA call is made.
    if !unsafe { cudarc::driver::sys::is_culib_present() } {
        return Err(DeviceError::NoDriver);
    }
    cudarc::driver::result::init().map_err(|e| DeviceError::Init(format!("{e:?}")))?;
    let count = cudarc::driver::result::device::get_count()
        .map_err(|e| DeviceError::Init(format!("{e:?}")))?;
    let count = usize::try_from(count).unwrap_or(0);
    if index >= count {
        return Err(DeviceError::NoDevice { index, count });
    }
    Ok(burn::backend::cuda::CudaDevice { index })
}
