from django.urls import path

from . import views

urlpatterns = [
    path("sync/fan-out", views.fan_out_sync),
    path("async/fan-out", views.fan_out_async),
    path("jobs", views.submit_job),
    path("jobs/<str:job_id>", views.job_status),
    path("jobs/<str:job_id>/result", views.job_result),
    path("tasks/count", views.enqueue_count),
    path("tasks/compare", views.enqueue_compare),
    path("tasks/<str:result_id>", views.task_result),
]
