# OpenFHE for the native extension: a pinned release, built static and position-independent with OpenMP,
# once per machine and flavour into a cache outside the checkout (a clean clone reuses it; rebuilding the
# extension then takes seconds). Built while configuring, so `cmake -S . -B build && cmake --build build`
# is the whole build and find_package sees a finished install.
#
# Sources, in this order: OPENFHE_SOURCE_TARBALL (a path option; the environment variable
# RESNET_FHE_OPENFHE_TARBALL sets its default), which must be the offline tarball of the pinned release
# with its cereal submodule (checked by SHA-256), else a git clone of the pinned commits (online).

set(OPENFHE_TAG v1.5.1)
set(OPENFHE_COMMIT 1306d14f8c26bb6150d3e6ad54f28dfe1007689e)
set(OPENFHE_CEREAL_COMMIT 984e3f194862b17916536b5fade40cba6e47a6fe)
set(OPENFHE_TARBALL_SHA256 ec2796b3cf48fab556743561549a5e56aca3fe8676f8759517767ef993adb104)
set(OPENFHE_REPOSITORY https://github.com/openfheorg/openfhe-development.git)

set(OPENFHE_SOURCE_TARBALL "$ENV{RESNET_FHE_OPENFHE_TARBALL}" CACHE FILEPATH
    "OpenFHE ${OPENFHE_TAG} source tarball with third-party/cereal (offline builds); empty: clone online")
if(DEFINED ENV{XDG_CACHE_HOME} AND NOT "$ENV{XDG_CACHE_HOME}" STREQUAL "")
  set(_cache_home "$ENV{XDG_CACHE_HOME}")
else()
  set(_cache_home "$ENV{HOME}/.cache")
endif()
set(RESNET_FHE_NATIVE_CACHE "${_cache_home}/resnet-fhe/native" CACHE PATH
    "where OpenFHE's build and install are kept between builds of the extension")

# A static library must match the compiler that links it and the optimisation it was built with.
if(WITH_NATIVEOPT)
  # -march=native means this CPU: the cache entry names what the compiler resolves it to (e.g. znver4).
  execute_process(COMMAND "${CMAKE_CXX_COMPILER}" -march=native -Q --help=target
                  OUTPUT_VARIABLE _target ERROR_QUIET)
  string(REGEX MATCH "-march=[ \t]+([A-Za-z0-9_.-]+)" _ "${_target}")
  if(NOT CMAKE_MATCH_1)  # a compiler that does not say (clang): this host's name keeps builds apart
    cmake_host_system_information(RESULT CMAKE_MATCH_1 QUERY HOSTNAME)
  endif()
  set(_flavour "native-${CMAKE_MATCH_1}")
else()
  set(_flavour generic)
endif()
set(_flavour "${_flavour}-${CMAKE_CXX_COMPILER_ID}-${CMAKE_CXX_COMPILER_VERSION}")
set(OPENFHE_PREFIX "${RESNET_FHE_NATIVE_CACHE}/openfhe-${OPENFHE_TAG}-${_flavour}")
set(_work "${RESNET_FHE_NATIVE_CACHE}/work/openfhe-${OPENFHE_TAG}-${_flavour}")
set(_done "${OPENFHE_PREFIX}/.resnet-fhe-complete")

function(_openfhe_step what log)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE _rc OUTPUT_FILE "${log}" ERROR_FILE "${log}.err")
  if(NOT _rc EQUAL 0)
    message(FATAL_ERROR "OpenFHE ${OPENFHE_TAG}: ${what} failed (exit ${_rc}); see ${log} and ${log}.err")
  endif()
endfunction()

if(NOT EXISTS "${_done}")
  string(TIMESTAMP _started "%s")
  file(REMOVE_RECURSE "${_work}" "${OPENFHE_PREFIX}")
  file(MAKE_DIRECTORY "${_work}")
  if(OPENFHE_SOURCE_TARBALL)
    if(NOT EXISTS "${OPENFHE_SOURCE_TARBALL}")
      message(FATAL_ERROR "OPENFHE_SOURCE_TARBALL ${OPENFHE_SOURCE_TARBALL} does not exist")
    endif()
    file(SHA256 "${OPENFHE_SOURCE_TARBALL}" _hash)
    if(NOT _hash STREQUAL OPENFHE_TARBALL_SHA256)
      message(FATAL_ERROR "${OPENFHE_SOURCE_TARBALL} has SHA-256 ${_hash}, not the pinned "
              "${OPENFHE_TARBALL_SHA256} (OpenFHE ${OPENFHE_TAG} with cereal ${OPENFHE_CEREAL_COMMIT})")
    endif()
    message(STATUS "OpenFHE ${OPENFHE_TAG}: unpacking ${OPENFHE_SOURCE_TARBALL}")
    file(ARCHIVE_EXTRACT INPUT "${OPENFHE_SOURCE_TARBALL}" DESTINATION "${_work}/unpacked")
    file(GLOB _top LIST_DIRECTORIES true "${_work}/unpacked/*")
    set(_source "${_top}")
  else()
    find_package(Git REQUIRED)
    message(STATUS "OpenFHE ${OPENFHE_TAG}: cloning ${OPENFHE_REPOSITORY} at ${OPENFHE_COMMIT}")
    set(_source "${_work}/source")
    _openfhe_step("git clone" "${_work}/git.log" "${GIT_EXECUTABLE}" clone --quiet "${OPENFHE_REPOSITORY}" "${_source}")
    _openfhe_step("git checkout" "${_work}/git.log" "${GIT_EXECUTABLE}" -C "${_source}" checkout --quiet "${OPENFHE_COMMIT}")
    _openfhe_step("git submodule" "${_work}/git.log" "${GIT_EXECUTABLE}" -C "${_source}" submodule update --init third-party/cereal)
    execute_process(COMMAND "${GIT_EXECUTABLE}" -C "${_source}/third-party/cereal" rev-parse HEAD
                    OUTPUT_VARIABLE _cereal OUTPUT_STRIP_TRAILING_WHITESPACE)
    if(NOT _cereal STREQUAL OPENFHE_CEREAL_COMMIT)
      message(FATAL_ERROR "OpenFHE ${OPENFHE_TAG}: its cereal submodule is at ${_cereal}, not the pinned "
              "${OPENFHE_CEREAL_COMMIT}")
    endif()
  endif()
  if(DEFINED ENV{CMAKE_BUILD_PARALLEL_LEVEL} AND NOT "$ENV{CMAKE_BUILD_PARALLEL_LEVEL}" STREQUAL "")
    set(_jobs "$ENV{CMAKE_BUILD_PARALLEL_LEVEL}")
  else()
    include(ProcessorCount)
    ProcessorCount(_jobs)
    if(_jobs EQUAL 0)
      set(_jobs 2)
    endif()
  endif()
  message(STATUS "OpenFHE ${OPENFHE_TAG}: building (static, OpenMP, WITH_NATIVEOPT=${WITH_NATIVEOPT}, "
                 "${_jobs} jobs) into ${OPENFHE_PREFIX}; a few minutes, once per machine")
  _openfhe_step("configure" "${_work}/configure.log" "${CMAKE_COMMAND}" -S "${_source}" -B "${_work}/build"
                -DCMAKE_BUILD_TYPE=Release "-DCMAKE_INSTALL_PREFIX=${OPENFHE_PREFIX}"
                "-DCMAKE_CXX_COMPILER=${CMAKE_CXX_COMPILER}" "-DCMAKE_C_COMPILER=${CMAKE_C_COMPILER}"
                -DBUILD_STATIC=ON -DBUILD_SHARED=OFF -DWITH_OPENMP=ON "-DWITH_NATIVEOPT=${WITH_NATIVEOPT}"
                -DBUILD_UNITTESTS=OFF -DBUILD_BENCHMARKS=OFF -DBUILD_EXAMPLES=OFF -DGIT_SUBMOD_AUTO=OFF)
  _openfhe_step("build" "${_work}/build.log" "${CMAKE_COMMAND}" --build "${_work}/build" --parallel ${_jobs})
  _openfhe_step("install" "${_work}/install.log" "${CMAKE_COMMAND}" --install "${_work}/build")
  string(TIMESTAMP _finished "%s")
  math(EXPR _seconds "${_finished} - ${_started}")
  file(WRITE "${_done}" "OpenFHE ${OPENFHE_TAG} ${OPENFHE_COMMIT}, ${_flavour}, built in ${_seconds} s\n")
  file(REMOVE_RECURSE "${_work}")
  message(STATUS "OpenFHE ${OPENFHE_TAG}: built and installed in ${_seconds} s")
endif()

find_package(OpenFHE CONFIG REQUIRED PATHS "${OPENFHE_PREFIX}" NO_DEFAULT_PATH)
separate_arguments(OpenFHE_CXX_FLAGS_LIST UNIX_COMMAND "${OpenFHE_CXX_FLAGS}")
