# Locates onnxruntime's C/C++ API headers (the pip wheel ships none) and sets ONNXRUNTIME_INCLUDE_DIR.
#
# Order: a user-given directory (-DONNXRUNTIME_INCLUDE_DIR=... or the environment variable of the
# same name), a cached copy, Debian trixie's libonnxruntime-dev (pinned URL and SHA-256, then
# `apt-get download` with a private state dir to follow a newer upload), else a clear error.
# onnxruntime's C API is backward compatible: a library built on these headers loads in newer
# onnxruntime releases. Nothing fetched is ever written into the source tree.

set(LSC_ORT_HEADERS_VERSION "1.21.0+dfsg-1")
set(LSC_ORT_HEADERS_DEB "libonnxruntime-dev_${LSC_ORT_HEADERS_VERSION}_amd64.deb")
set(LSC_ORT_HEADERS_URL "http://deb.debian.org/debian/pool/main/o/onnxruntime/${LSC_ORT_HEADERS_DEB}")
set(LSC_ORT_HEADERS_SHA256 "14f7d959d5deacbcf1504830d4189f91fc67382b399ed9ae9d3aa9c4050ced08")

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

function(_lsc_unpack_deb deb destination)
  set(work "${destination}.unpack")
  file(REMOVE_RECURSE "${work}")
  file(MAKE_DIRECTORY "${work}")
  execute_process(COMMAND ${CMAKE_COMMAND} -E tar xf "${deb}" WORKING_DIRECTORY "${work}" RESULT_VARIABLE rc)
  file(GLOB data_tar "${work}/data.tar.*")
  if(NOT rc EQUAL 0 OR NOT data_tar)
    message(WARNING "lsc-ort: could not unpack ${deb}")
    return()
  endif()
  execute_process(COMMAND ${CMAKE_COMMAND} -E tar xf "${data_tar}" WORKING_DIRECTORY "${work}" RESULT_VARIABLE rc)
  if(rc EQUAL 0 AND EXISTS "${work}/usr/include/onnxruntime/onnxruntime_c_api.h")
    file(REMOVE_RECURSE "${destination}")
    file(MAKE_DIRECTORY "${destination}")
    file(RENAME "${work}/usr/include/onnxruntime" "${destination}/onnxruntime")
  endif()
  file(REMOVE_RECURSE "${work}")
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
    message(STATUS "lsc-ort: downloading onnxruntime headers from ${LSC_ORT_HEADERS_URL}")
    set(deb "${cache}/${LSC_ORT_HEADERS_DEB}")
    file(DOWNLOAD "${LSC_ORT_HEADERS_URL}" "${deb}" EXPECTED_HASH SHA256=${LSC_ORT_HEADERS_SHA256}
         STATUS status TIMEOUT 120)
    list(GET status 0 code)
    if(code EQUAL 0)
      _lsc_unpack_deb("${deb}" "${headers}")
    else()
      message(STATUS "lsc-ort: pinned download failed (${status})")
    endif()
    file(REMOVE "${deb}")
    _lsc_find_api_header("${headers}" found)
  endif()

  find_program(APT_GET apt-get)
  if(NOT found AND APT_GET)
    message(STATUS "lsc-ort: fetching libonnxruntime-dev (Debian trixie) with apt-get download")
    set(apt "${cache}/apt")
    file(MAKE_DIRECTORY "${apt}/lists/partial" "${apt}/archives/partial" "${apt}/parts" "${apt}/deb")
    file(WRITE "${apt}/sources.list"
         "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main\n")
    set(apt_options -o Dir::Etc::SourceList=${apt}/sources.list -o Dir::Etc::SourceParts=${apt}/parts
        -o Dir::State::Lists=${apt}/lists -o Dir::Cache=${apt} -o Dir::State::status=/dev/null
        -o Debug::NoLocking=1 -o APT::Sandbox::User=root -qq)
    execute_process(COMMAND ${APT_GET} ${apt_options} update RESULT_VARIABLE rc OUTPUT_QUIET ERROR_QUIET)
    if(rc EQUAL 0)
      execute_process(COMMAND ${APT_GET} ${apt_options} download libonnxruntime-dev
                      WORKING_DIRECTORY "${apt}/deb" RESULT_VARIABLE rc OUTPUT_QUIET ERROR_QUIET)
      file(GLOB debs "${apt}/deb/libonnxruntime-dev_*.deb")
      if(rc EQUAL 0 AND debs)
        list(GET debs 0 deb)
        _lsc_unpack_deb("${deb}" "${headers}")
      endif()
    endif()
    file(REMOVE_RECURSE "${apt}")
    _lsc_find_api_header("${headers}" found)
  endif()

  if(NOT found)
    message(FATAL_ERROR
      "lsc-ort: onnxruntime's C API headers are needed to build the custom-op library and could "
      "not be obtained (the onnxruntime wheel ships none; downloading Debian's libonnxruntime-dev "
      "failed). Point ONNXRUNTIME_INCLUDE_DIR at a directory holding onnxruntime_c_api.h and "
      "onnxruntime_cxx_api.h, e.g.\n"
      "  ONNXRUNTIME_INCLUDE_DIR=/usr/include/onnxruntime pip install .\n"
      "(from libonnxruntime-dev, or the include/ folder of an onnxruntime release archive).")
  endif()
  set(ONNXRUNTIME_INCLUDE_DIR "${found}")
endif()
message(STATUS "lsc-ort: onnxruntime headers in ${ONNXRUNTIME_INCLUDE_DIR}")
