# Locates onnxruntime's C/C++ API headers (the pip wheel ships none) and sets ONNXRUNTIME_INCLUDE_DIR.
#
# Order: a user-given directory (-DONNXRUNTIME_INCLUDE_DIR=... or the environment variable of the
# same name), a cached copy (LSC_ORT_CACHE_DIR, else $XDG_CACHE_HOME/lsc-ort, else
# ~/.cache/lsc-ort), else Debian trixie's libonnxruntime-dev fetched through the machine's own apt
# configuration by fetch_onnxruntime_headers.py (the mirror apt is configured with, a private apt
# state; the package is verified by the archive's signature, or by the SHA-256 pin below when no
# keyring is installed), else a clear error. onnxruntime's C API is backward compatible: a library
# built on these headers loads in newer onnxruntime releases. Nothing fetched is written into the
# source tree.

set(LSC_ORT_HEADERS_VERSION "1.21.0+dfsg-1")
set(LSC_ORT_HEADERS_SHA256 "14f7d959d5deacbcf1504830d4189f91fc67382b399ed9ae9d3aa9c4050ced08")  # the amd64 .deb

function(_lsc_find_api_header dir out)
  foreach(candidate "${dir}" "${dir}/onnxruntime" "${dir}/include" "${dir}/include/onnxruntime"
                    "${dir}/usr/include/onnxruntime")
    if(EXISTS "${candidate}/onnxruntime_c_api.h" AND EXISTS "${candidate}/onnxruntime_cxx_api.h")
      set(${out} "${candidate}" PARENT_SCOPE)
      return()
    endif()
  endforeach()
  set(${out} "" PARENT_SCOPE)
endfunction()

if(NOT ONNXRUNTIME_INCLUDE_DIR AND DEFINED ENV{ONNXRUNTIME_INCLUDE_DIR})
  set(ONNXRUNTIME_INCLUDE_DIR "$ENV{ONNXRUNTIME_INCLUDE_DIR}")
endif()

if(ONNXRUNTIME_INCLUDE_DIR)
  _lsc_find_api_header("${ONNXRUNTIME_INCLUDE_DIR}" found)
  if(NOT found)
    message(FATAL_ERROR "lsc-ort: ONNXRUNTIME_INCLUDE_DIR=${ONNXRUNTIME_INCLUDE_DIR} holds no "
                        "onnxruntime_c_api.h and onnxruntime_cxx_api.h")
  endif()
  set(ONNXRUNTIME_INCLUDE_DIR "${found}")
else()
  if(DEFINED ENV{LSC_ORT_CACHE_DIR})
    set(cache "$ENV{LSC_ORT_CACHE_DIR}")
  elseif(DEFINED ENV{XDG_CACHE_HOME})
    set(cache "$ENV{XDG_CACHE_HOME}/lsc-ort")
  elseif(DEFINED ENV{HOME})
    set(cache "$ENV{HOME}/.cache/lsc-ort")
  else()
    set(cache "${CMAKE_BINARY_DIR}/_deps")
  endif()
  set(headers "${cache}/onnxruntime-headers-${LSC_ORT_HEADERS_VERSION}")
  _lsc_find_api_header("${headers}" found)

  if(NOT found)
    find_package(Python3 COMPONENTS Interpreter)
    if(Python3_Interpreter_FOUND)
      message(STATUS "lsc-ort: fetching libonnxruntime-dev ${LSC_ORT_HEADERS_VERSION} (Debian trixie) "
                     "through apt's configured mirror into ${headers}")
      execute_process(
        COMMAND "${Python3_EXECUTABLE}" "${CMAKE_CURRENT_LIST_DIR}/fetch_onnxruntime_headers.py"
                --dest "${headers}" --version "${LSC_ORT_HEADERS_VERSION}" --sha256 "${LSC_ORT_HEADERS_SHA256}"
        RESULT_VARIABLE rc OUTPUT_VARIABLE fetch_out ERROR_VARIABLE fetch_err
        OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_STRIP_TRAILING_WHITESPACE)
      if(fetch_out)
        message(STATUS "lsc-ort: ${fetch_out}")
      endif()
      if(NOT rc EQUAL 0)
        message(STATUS "lsc-ort: could not fetch the headers:\n${fetch_err}")
      endif()
      _lsc_find_api_header("${headers}" found)
    else()
      message(STATUS "lsc-ort: no Python interpreter to fetch the headers with")
    endif()
  endif()

  if(NOT found)
    message(FATAL_ERROR
      "lsc-ort: onnxruntime's C API headers are needed to build the custom-op library and could "
      "not be obtained (the onnxruntime wheel ships none; fetching Debian's libonnxruntime-dev "
      "through apt failed, see above). Point ONNXRUNTIME_INCLUDE_DIR at a directory holding "
      "onnxruntime_c_api.h and onnxruntime_cxx_api.h, e.g.\n"
      "  ONNXRUNTIME_INCLUDE_DIR=/usr/include/onnxruntime pip install .\n"
      "(from libonnxruntime-dev, or the include/ folder of an onnxruntime release archive).")
  endif()
  set(ONNXRUNTIME_INCLUDE_DIR "${found}")
endif()
message(STATUS "lsc-ort: onnxruntime headers in ${ONNXRUNTIME_INCLUDE_DIR}")
